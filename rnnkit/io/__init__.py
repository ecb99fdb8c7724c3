"""Model files (one .npz with a JSON header, never pickled) and PyTorch state_dict interchange."""

from .modelfile import FORMAT_VERSION, ModelFile, load_model_file, save_model_file
from .torch_interop import load_torch_state_dict, to_torch_state_dict

__all__ = ["FORMAT_VERSION", "ModelFile", "load_model_file", "save_model_file",
           "load_torch_state_dict", "to_torch_state_dict"]
