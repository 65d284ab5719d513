"""Pure converters from the files the registry packages ship to ONNX models onnxruntime runs."""
