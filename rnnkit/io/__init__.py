"""Files: model files (one .npz with a JSON header, never pickled), the one atomic writer every output
goes through, input reading with limits, the JSON normaliser, PyTorch state_dict interchange and ONNX export."""

from .atomic import atomic_write, check_outputs, check_writable, same_file, save_figure, write_json, write_text
from .inputs import check_input, read_bytes, read_text, refuse_special
from .jsonable import plain, to_json
from .modelfile import FORMAT_VERSION, ModelFile, load_model_file, save_model_file
from .onnx_export import export_onnx, save_onnx, to_onnx
from .torch_interop import load_torch_state_dict, to_torch_state_dict

__all__ = ["FORMAT_VERSION", "ModelFile", "load_model_file", "save_model_file",
           "load_torch_state_dict", "to_torch_state_dict", "atomic_write", "check_outputs", "check_writable",
           "same_file", "save_figure", "write_json", "write_text", "check_input", "read_bytes", "read_text",
           "refuse_special", "plain", "to_json", "export_onnx", "to_onnx", "save_onnx"]
