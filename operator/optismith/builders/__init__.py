"""Building variants: what the build stages (optimize, quantize, convert) share, and one builder module
per toolchain, each named by the variant catalog.

    reference  the samples every variant is checked against, and the calibration data
    base       BuildInputs, build_variant (build, publish, check numerics), Unavailable
    stage      BuildStage: builds the catalog's variants of one stage
    graph      Grappler and XLA;  tflite  TFLite converter;  onnx  tf2onnx + ONNX Runtime quantization
    openvino   OpenVINO IR;  tftrt  TF-TRT
    mixed      accuracy-aware int8: the search that keeps the most sensitive layers in float under the gate;
               tflite_mixed / onnx_mixed  its TFLite (QuantizationDebugger) and ONNX Runtime (qdq_loss_debug) sides
"""
