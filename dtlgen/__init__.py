"""dtlgen: turn a deep-transfer-learning model into an FPGA accelerator that re-trains on the device."""

__version__ = "0.1.0"
