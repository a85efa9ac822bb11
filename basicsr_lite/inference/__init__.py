"""What the inference tools use: a pretrained network from an option file or arguments, ONNX
export. (Tiled inference itself is in ``runtime.tiling``, shared with validation.)"""
