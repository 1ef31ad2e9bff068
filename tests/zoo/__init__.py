"""The model zoo: architectures users bring (recurrent, attention, EfficientNet, segmentation, multi-input,
TF1 while loops), built in the tests with random or bundled-data weights, and which variants each builds."""
