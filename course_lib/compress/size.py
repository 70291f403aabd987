"""How big is a model: parameters, zeros, bytes at a bit width, bytes on disk.

``size_report`` works on float models, on pruned ones (zeros counted) and on the int8
models of ``course_lib.compress.int8`` (whose weights are quantized tensors, not
``nn.Parameter``s), because it reads the state dict: every entry named ``*.weight`` or
``*.bias`` is a parameter (and so are an int8 Linear's packed weight and bias);
BatchNorm running statistics and quantizer scales are not.
"""
from __future__ import annotations

import io

import torch
from torch import nn


def state_dict_bytes(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())``: the size of the file you would ship."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


def _parameter_tensors(model: nn.Module) -> list[torch.Tensor]:
    tensors = []
    for key, value in model.state_dict().items():
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "_packed_params" and isinstance(value, tuple):   # an int8 Linear: (w, b)
            tensors += [t for t in value if torch.is_tensor(t)]
        elif torch.is_tensor(value) and leaf in ("weight", "bias"):
            tensors.append(value)
    return [t.dequantize() if t.is_quantized else t for t in tensors]


def size_report(model: nn.Module, bits: int = 32) -> dict:
    """Size figures of ``model`` as a dict (one row of a table).

    - ``params``: number of weights and biases; ``nonzeros``: how many are not 0;
    - ``sparsity``: 1 - nonzeros / params;
    - ``bits``: the bit width assumed for storage; ``bytes_dense``: params * bits / 8;
    - ``bytes_sparse``: nonzeros * bits / 8, the ideal of sparse storage (real formats
      also store positions, e.g. 4-16 bits per nonzero);
    - ``state_dict_bytes``: the actual size of the saved state dict (all buffers included).
    """
    tensors = _parameter_tensors(model)
    params = sum(t.numel() for t in tensors)
    nonzeros = sum(int(torch.count_nonzero(t)) for t in tensors)
    return {
        "params": params,
        "nonzeros": nonzeros,
        "sparsity": 1 - nonzeros / params if params else 0.0,
        "bits": bits,
        "bytes_dense": params * bits / 8,
        "bytes_sparse": nonzeros * bits / 8,
        "state_dict_bytes": state_dict_bytes(model),
    }
