"""exporters (the ``export/`` folder): checkpoint -> deployable artifacts.

Every format goes through one skeleton (:func:`.skeleton.export_artifact`): options checked against the
format table, the format's converter, metadata embedded, artifact and manifest written as a pair.  A
format module (``onnx_export``, ``tensorrt_onnx``, ``tensorrt_build``, ``tflite_export``,
``coreml_export``) only converts.  The public function is :func:`modnet_edge.export` (it adds the
budget search of the floor above); the package is imported as ``modnet_edge.exporters`` so that name
and the function's never meet.
"""
