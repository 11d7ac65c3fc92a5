"""calibration: representative data for INT8, shared by every format that quantises."""
