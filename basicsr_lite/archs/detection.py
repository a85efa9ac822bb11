"""Which of our networks a state dict is, with its constructor arguments, from the weights alone
(``network_g: {type: auto}``, ``--pretrained``).

:data:`DETECTORS` (archs/detectors.py, detectors_distill.py, detectors_modulation.py) holds
one ``detect(state) -> options | None`` per architecture, read from key names and tensor
shapes; an architecture class may also define a ``detect_options`` classmethod (it is used
first). Names that are one network are detected as one of them (:data:`SAME_NETWORK`).
Arguments that leave no trace in the weights (img_range, res_scale, ...) keep their defaults;
:data:`UNDETECTABLE` lists them, and the scale where the weights cannot tell it.
"""
from __future__ import annotations

import json

from basicsr_lite.archs.detectors import DETECTORS as BASE_DETECTORS
from basicsr_lite.archs.detectors import State
from basicsr_lite.archs.detectors_atd import ATD_DETECTORS
from basicsr_lite.archs.detectors_dat import DAT_DETECTORS
from basicsr_lite.archs.detectors_distill import DISTILL_DETECTORS
from basicsr_lite.archs.detectors_hat import HAT_DETECTORS
from basicsr_lite.archs.detectors_modulation import MODULATION_DETECTORS
from basicsr_lite.archs.detectors_srformer import SRFORMER_DETECTORS
from basicsr_lite.errors import UserError
from basicsr_lite.registry import ARCH_REGISTRY
from basicsr_lite.runtime.weights import extract_state_dict, load_weights, read_metadata

DETECTORS = {**BASE_DETECTORS, **DISTILL_DETECTORS, **MODULATION_DETECTORS,
             **SRFORMER_DETECTORS, **HAT_DETECTORS, **ATD_DETECTORS, **DAT_DETECTORS}

# Registered names that are another one's network (the same class, or the same layout): their
# weights are detected as the name on the right, deterministically.
SAME_NETWORK = {
    'RFDNFINALB5': 'BSRN_S',  # one class registered twice (the authors' option files' name)
    'RLFN_S': 'RLFN',  # one layout: detected as RLFN_S only at RLFN-S's width, 48
}

# Registered networks without a detector, and why (a test keeps this list complete).
NOT_DETECTED = {
    'ArbSR': 'its backbone variants and scale-aware adapters: not written yet',
    'NLayerDiscriminator': "pix2pix's norm variants: not written yet",
    'RFDNFINALB5': 'an alias of BSRN_S (the same class): its weights are detected as BSRN_S',
    'ResNetGenerator': "pix2pix's norm / dropout variants: not written yet",
    'UNetGenerator': "pix2pix's nested blocks: not written yet",
}

# Arguments the weights do not show: detection leaves them at their defaults.
UNDETECTABLE: dict[str, tuple[str, ...]] = {
    'ATD': ('category_size (taken as the variant\'s published value: 128 light, 256 else)',
            'img_size unless ape', 'img_range'),
    'EDSR': ('res_scale', 'img_range', 'rgb_mean'),
    'FSRCNN': ('upscale',),  # the transposed conv's stride (SCALE_NOT_IN_WEIGHTS)
    'OmniSR': ('signed_range', 'ffn_bias'),
    'PAN': ('upscale 2 vs 3',),
    'RCAN': ('res_scale', 'img_range and rgb_mean in BasicSR\'s layout'),
    'SRVGGNetCompact': ('act_type relu vs leakyrelu', 'num_out_ch'),
    'IMDN': ('num_out_ch',), 'RFDN': ('num_out_ch', 'img_range'),
    'PLKSR': ('with_idt', 'SparsePLK: kernel_size, sparse_kernels, sparse_dilations, '
              'use_max_kernel'),
    'RealPLKSR': ('norm_groups', 'dropout'),
    'UNetDiscriminatorSN': ('skip_connection',),
    'BSRN': ('upsampler (one is built)', 'p unless conv is BSConvS; there only within the '
             'interval the mid channels allow (0.25 when it fits)'),
    'BSRN_S': ('upsampler (one is built)', 'p (unused)'),
    'LKDN': ('conv BSConvU vs BSConvU_idt (the same weights)',),
    'RLFN': ('img_range', 'out_channels'), 'RLFN_S': ('img_range', 'out_channels'),
    'RLFN_Prune': ('img_range', 'out_channels'),
    'SAFMNPP': ('use_se (builds nothing)',),
    'SPAN': ('img_range', 'rgb_mean', 'bias (unused)', 'num_out_ch'),
    'PatchGANDiscriminatorSN': ('use_sigmoid',),
    'MultiscalePatchGANDiscriminatorSN': ('use_sigmoid',),
    'SwinIR': ('img_size unless ape (no attention-mask buffers are saved)', 'img_range', 'drop rates'),
    'SRFormer': ('img_size beyond its round-up to window_size (64 / 48 preferred)', 'img_range',
                 'qk_scale', 'drop rates'),
    'HAT': ('img_size unless ape', 'conv_scale', 'qk_scale', 'img_range', 'drop rates'),
    'DRCT': ('depths (only their number: every group has five blocks; 6 each is returned)',
             'qk_scale', 'img_range', 'drop rates',
             'compress_ratio, squeeze_factor, conv_scale, overlap_ratio (build nothing)'),
    'DAT': ('img_size when no block shifts its windows (no attn_mask buffers)',
            'num_heads of a one-block group: twice its window branch heads (odd counts read as '
            'even)', 'img_range', 'qk_scale', 'drop rates'),
    'RGT': ('img_size (unused: the masks are 64 x 64 whatever it says)',
            'num_heads: twice the window branch heads, plus one where that does not divide '
            'embed_dim', 'c_ratio when no group has a second block', 'img_range', 'qk_scale',
            'drop rates'),
}


# Architectures whose scale the weights do not (always) show: (argument, the detected values
# that are ambiguous; None: every value). The scale must come from elsewhere (option file,
# --scale).
SCALE_NOT_IN_WEIGHTS = {'FSRCNN': ('upscale', None), 'PAN': ('upscale', (2,))}


def with_scale(options: dict, scale: int | None, where: str) -> dict:
    """``options`` with the scale the weights cannot show set to ``scale`` (an error without)."""
    entry = SCALE_NOT_IN_WEIGHTS.get(options['type'])
    if entry is None:
        return options
    key, ambiguous = entry
    if ambiguous is not None and options.get(key) not in ambiguous:
        return options
    if scale is None:
        raise UserError(f"{where}: {options['type']}'s weights do not show its scale; give it "
                        f'(scale in the option file, --scale in the tools).')
    return {**options, key: int(scale)}


def detect(state: State) -> list[dict]:
    """Every architecture whose detector recognises ``state`` (normally one)."""
    found = []
    for name in ARCH_REGISTRY.keys():
        own = getattr(ARCH_REGISTRY.get(name), 'detect_options', None)
        detector = own or DETECTORS.get(name)
        try:
            options = detector(state) if detector is not None else None
        except (KeyError, IndexError, ValueError, ZeroDivisionError):
            options = None  # keys of another network that look alike at first
        if options is not None:
            found.append(options)
    return found


def detect_network(state: State, where: str = 'weights') -> dict:
    """The one network ``state`` is, or a UserError naming what was found."""
    found = detect(state)
    if len(found) == 1:
        return found[0]
    keys = ', '.join(f'{k} {tuple(v.shape)}' for k, v in list(state.items())[:5])
    if not found:
        raise UserError(f'{where}: no architecture here recognises these weights '
                        f'({len(state)} tensors, e.g. {keys}). Detected architectures: '
                        f'{", ".join(sorted(DETECTORS))}; name the type in network_g instead.')
    raise UserError(f'{where}: the weights fit several architectures '
                    f'({", ".join(o["type"] for o in found)}); name the type in network_g. '
                    f'Keys: {keys}.')


def weights_state(path: str, param_key: str | None = None) -> State:
    """The state dict of a weights file in any wrapper (``params_ema`` first when no key given)."""
    return extract_state_dict(load_weights(path), param_key, str(path))


METADATA_KEY = 'network_g'  # safetensors metadata: the network options as JSON


def options_in_metadata(path: str) -> dict | None:
    """The network options a self-describing file names (safetensors metadata ``network_g``,
    JSON ``{"type": ..., args}``), or None."""
    text = read_metadata(path).get(METADATA_KEY)
    if not text:
        return None
    try:
        options = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f'{path}: its metadata {METADATA_KEY} is not JSON ({err}).') from err
    if not isinstance(options, dict) or options.get('type') not in ARCH_REGISTRY:
        raise UserError(f'{path}: its metadata {METADATA_KEY} names no registered '
                        f'architecture: {text[:200]}')
    return options


def options_from_weights(path: str, param_key: str | None = None,
                         scale: int | None = None) -> dict:
    """The network options of the weights in ``path`` (``network_g: {type: auto}``): what the
    file's metadata says, else detected. Weights of an architecture that only spandrel knows
    are an error saying so: they can run in the tools (``--pretrained``), not be trained or
    tested here."""
    named = options_in_metadata(path)
    if named is not None:
        return named
    state = weights_state(path, param_key)
    found = detect(state)
    if not found:
        from basicsr_lite.archs.interop import spandrel_names_it
        named = spandrel_names_it(state)
        if named:
            raise UserError(f'{path}: not one of our architectures; spandrel recognises it as '
                            f'{named}. Such weights can run in tools/inference.py and '
                            f'tools/export_onnx.py (--pretrained {path}), but not be trained or '
                            f'tested here: name one of our architectures in network_g.')
    return with_scale(detect_network(state, str(path)), scale, str(path))
