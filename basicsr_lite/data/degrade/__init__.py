"""Degradations: per-image (numpy) and per-batch (torch, on the device) ones, blur kernels, JPEG in
torch, MATLAB bicubic resizing, arbitrary-scale LR making, and Real-ESRGAN's pipeline."""
