"""The runtimes bench-infer times the model under: one module per runtime family (onnxruntime,
pytorch, openvino), the Runner they all return (base), and the registry that names them."""
