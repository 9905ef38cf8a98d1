"""Adapted weights out, in the forms trackers and deployments load: torchreid state dicts, ONNX, TorchScript."""
