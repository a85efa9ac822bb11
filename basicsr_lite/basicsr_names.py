"""Names from BasicSR that basicsr_lite does not have (yet), so that an option file written for
BasicSR gets "not available" instead of a misleading "did you mean" for them.

Remove a name from here when it lands in a registry.
"""
from __future__ import annotations

GAN_MODELS = 'the GAN models (model_type SRGANModel / ESRGANModel)'
REAL_ESRGAN_MODELS = 'the Real-ESRGAN models (model_type RealESRNetModel / RealESRGANModel)'

# Registered names of BasicSR (per registry kind) missing here.
NOT_AVAILABLE: dict[str, frozenset[str]] = {
    'model': frozenset({
        'VideoBaseModel',
        'VideoGANModel', 'EDVRModel', 'VideoRecurrentModel', 'VideoRecurrentGANModel',
        'HiFaceGANModel', 'StyleGAN2Model'}),
    'arch': frozenset({
        'EDVR', 'BasicVSR', 'IconVSR',
        'BasicVSRPlusPlus', 'DUF', 'TOFlow', 'SPyNet', 'RIDNet', 'DFDNet', 'ECBSR',
        'StyleGAN2Generator', 'StyleGAN2Discriminator', 'StyleGAN2GeneratorC',
        'HiFaceGAN', 'HiFaceGANDiscriminator'}),
    'loss': frozenset({'MultiScaleGANLoss', 'WeightedTVLoss', 'GANFeatLoss'}),
    'dataset': frozenset({
        'RealESRGANPairedDataset', 'REDSDataset', 'REDSRecurrentDataset',
        'Vimeo90KDataset', 'Vimeo90KRecurrentDataset', 'VideoTestDataset',
        'VideoRecurrentTestDataset', 'VideoTestVimeo90KDataset', 'VideoTestDUFDataset',
        'FFHQDataset'}),
    'metric': frozenset({'calculate_fid'}),
}

# Option keys that other models use: section ('' = top level) -> key -> who uses it; the
# models that basicsr_lite has are in AVAILABLE_USERS.
FOREIGN_KEYS: dict[str, dict[str, str]] = {
    '': {
        'network_d': GAN_MODELS,
        **dict.fromkeys((
            'l1_gt_usm', 'percep_gt_usm', 'gan_gt_usm', 'gt_usm', 'resize_prob', 'resize_range',
            'gaussian_noise_prob', 'noise_range', 'poisson_scale_range', 'gray_noise_prob',
            'jpeg_range', 'second_blur_prob', 'resize_prob2', 'resize_range2',
            'gaussian_noise_prob2', 'noise_range2', 'poisson_scale_range2', 'gray_noise_prob2',
            'jpeg_range2', 'gt_size', 'queue_size', 'high_order_degradation'),
            REAL_ESRGAN_MODELS),
    },
    'train': dict.fromkeys(('optim_d', 'net_d_iters', 'net_d_init_iters', 'gan_opt',
                            'perceptual_opt', 'ldl_opt', 'd_skip_threshold'), GAN_MODELS),
    'path': dict.fromkeys(('pretrain_network_d', 'param_key_d', 'strict_load_d'), GAN_MODELS),
}


def not_available_message(kind: str, name: str) -> str | None:
    """The message for a BasicSR name of registry ``kind`` that basicsr_lite lacks, else None."""
    if name in NOT_AVAILABLE.get(kind, ()):
        return f"'{name}' is BasicSR's {kind}; basicsr_lite does not have it yet."
    return None


AVAILABLE_USERS = frozenset({GAN_MODELS, REAL_ESRGAN_MODELS})


def foreign_key_message(section: str, key: str) -> str | None:
    """Why an option key unknown to this model exists in (BasicSR) option files, else None."""
    users = FOREIGN_KEYS.get(section, {}).get(key)
    if users is None:
        return None
    if users in AVAILABLE_USERS:
        return f'used by {users}, not by this model_type; remove it or change model_type'
    return f'used by {users}, which basicsr_lite does not have yet; remove it'
