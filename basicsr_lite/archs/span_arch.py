"""SPAN (Wan et al., "Swift Parameter-free Attention Network for Efficient Super-Resolution",
CVPR-W 2024, NTIRE 2024 efficient-SR winner); keys, defaults and order of operations of the
authors' ``basicsr/archs/span_arch.py`` (hongyuanyu/SPAN), so files open in their code and in
spandrel.

Every 3x3 conv is a re-parameterisable ``Conv3XC``: it trains as a 1x1 -> 3x3 -> 1x1 chain
(``conv.0..2``) plus a 1x1 skip (``sk``) and infers with one 3x3 conv (``eval_conv``) folded from
them. A network holds either form per Conv3XC: the trained form (branches + ``eval_conv``, the
authors' key set) or the deploy form (``eval_conv`` only, as the NTIRE "slim" files). Loading a
state dict switches each Conv3XC to the form the file has (see ``match_state_dict_form``), so
both load strictly and no key is ever dropped.
"""
from __future__ import annotations

import logging
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from basicsr_lite.registry import ARCH_REGISTRY

logger = logging.getLogger('basicsr_lite')


class Conv3XC(nn.Module):
    """A 3x3 conv trained over-parameterised (``gain1`` widens the inner 3x3) and folded for
    inference. In the trained form, training runs the branches and eval runs ``eval_conv``,
    refolded only when a branch tensor (or ``eval_conv`` itself) differs from the copy kept at
    the last fold (an optimizer step, an EMA update, a load, a move): the authors refold on
    every eval forward, with the same result. The copy is compared by value because tensor
    version counters miss updates (fused Adam and ``.data`` writes leave them unchanged); it
    costs one more copy of those weights and an equality test per eval forward, about a fifth
    of a fold's time (feature_channels 48, one CPU core: 2.6 ms against 14 ms for all 20).
    ``gain2`` is unused, as in the authors' code."""

    def __init__(self, c_in: int, c_out: int, gain1: int = 1, gain2: int = 0, s: int = 1,
                 bias: bool = True, relu: bool = False, deploy: bool = False) -> None:
        super().__init__()
        self.c_in, self.c_out, self.gain, self.stride = c_in, c_out, gain1, s
        self.bias = bias
        self.has_relu = relu
        self.deploy = False  # the trained form until switch_to_deploy()
        self._folded_from: list[torch.Tensor] | None = None  # branch values at the last fold
        self.sk: nn.Conv2d | None
        self.conv: nn.Sequential | None
        self.sk, self.conv = self._make_branches()
        self.eval_conv = nn.Conv2d(c_in, c_out, 3, stride=s, padding=1, bias=bias)
        self._eval_conv_as_parameters(False)
        self.fold()
        if deploy:
            self.switch_to_deploy()

    def _make_branches(self) -> tuple[nn.Conv2d, nn.Sequential]:
        c_in, c_out, gain, s, bias = self.c_in, self.c_out, self.gain, self.stride, self.bias
        sk = nn.Conv2d(c_in, c_out, 1, stride=s, padding=0, bias=bias)
        conv = nn.Sequential(
            nn.Conv2d(c_in, c_in * gain, 1, padding=0, bias=bias),
            nn.Conv2d(c_in * gain, c_out * gain, 3, stride=s, padding=0, bias=bias),
            nn.Conv2d(c_out * gain, c_out, 1, padding=0, bias=bias))
        return sk, conv

    def _eval_conv_as_parameters(self, trainable: bool) -> None:
        """In the trained form ``eval_conv``'s tensors are derived, so buffers (saved under the
        same keys, never optimised, no gradient expected); in the deploy form, parameters."""
        for name in ('weight', 'bias'):
            tensor = getattr(self.eval_conv, name)
            if tensor is None:
                continue
            data = tensor.detach()
            delattr(self.eval_conv, name)
            if trainable:
                self.eval_conv.register_parameter(name, nn.Parameter(data))
            else:
                self.eval_conv.register_buffer(name, data)

    def _branch_tensors(self) -> list[torch.Tensor]:
        return [t for m in (*self.conv, self.sk) for t in (m.weight, m.bias) if t is not None]

    def _watched_tensors(self) -> list[torch.Tensor]:
        # eval_conv too: something else may write it (ModelEMA copies buffers, DDP broadcasts)
        return self._branch_tensors() + [t for t in (self.eval_conv.weight, self.eval_conv.bias)
                                         if t is not None]

    def _is_stale(self) -> bool:
        return self._folded_from is None or not all(
            torch.equal(old, new) for old, new in zip(self._folded_from, self._watched_tensors()))

    @torch.no_grad()
    def fold(self) -> None:
        """``eval_conv`` <- the single 3x3 conv equal to ``conv`` + ``sk`` (exact up to float
        rounding; zero padding of the input is the same in both)."""
        if self.deploy:
            return
        (w1, b1), (w2, b2), (w3, b3) = [(m.weight, m.bias) for m in self.conv]
        weight = torch.einsum('om,mnhw,ni->oihw', w3[:, :, 0, 0], w2, w1[:, :, 0, 0])
        weight[:, :, 1, 1] += self.sk.weight[:, :, 0, 0]
        self.eval_conv.weight.copy_(weight)
        if self.bias:
            inner = b2 + torch.einsum('mnhw,n->m', w2, b1)
            self.eval_conv.bias.copy_(w3[:, :, 0, 0] @ inner + b3 + self.sk.bias)
        with torch.inference_mode(False):  # a normal tensor even when folding in inference mode
            self._folded_from = [t.detach().clone() for t in self._watched_tensors()]

    def _fold_if_stale(self) -> None:
        if not self.deploy and self._is_stale():
            self.fold()

    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        """Fold, then drop the branches: ``eval_conv`` becomes a plain conv (its tensors new
        parameters: build an optimizer after switching)."""
        if self.deploy:
            return
        self.fold()
        self.sk, self.conv = None, None
        self._eval_conv_as_parameters(True)
        self.deploy = True
        self._folded_from = None

    def match_form(self, state: Mapping[str, torch.Tensor], prefix: str) -> None:
        """Take the form of ``state``'s keys under ``prefix``: deploy when it has
        ``eval_conv`` but no ``sk``, trained when it has ``sk``; otherwise stay (the strict
        check then reports the missing keys)."""
        has_branches = f'{prefix}sk.weight' in state
        if self.deploy and has_branches:  # fresh branches for the load to fill
            self.sk, self.conv = self._make_branches()
            self.sk.to(self.eval_conv.weight)
            self.conv.to(self.eval_conv.weight)
            self._eval_conv_as_parameters(False)
            self.deploy = False
            self._folded_from = None
        elif not self.deploy and not has_branches and f'{prefix}eval_conv.weight' in state:
            self.switch_to_deploy()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs) -> None:
        # Runs before the children load, so they are the ones the file holds.
        self.match_form(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        if self.deploy:  # torch skips keys under a None child; a stray branch key is an error
            unexpected_keys.extend(k for k in state_dict
                                   if k.startswith((f'{prefix}sk.', f'{prefix}conv.')))
        self._folded_from = None  # the children are loaded after this: refold on next use

    def _save_to_state_dict(self, destination, prefix, keep_vars) -> None:
        self._fold_if_stale()  # the file's eval_conv agrees with its branches
        super()._save_to_state_dict(destination, prefix, keep_vars)

    def _apply(self, fn, recurse: bool = True):
        self._folded_from = None  # a move or cast makes new tensors
        return super()._apply(fn, recurse)

    def train(self, mode: bool = True) -> Conv3XC:
        super().train(mode)
        if not mode:
            self._fold_if_stale()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and not self.deploy:
            out = self.conv(F.pad(x, (1, 1, 1, 1), 'constant', 0)) + self.sk(x)
        else:
            if not (torch.jit.is_tracing() or torch.compiler.is_compiling()):
                self._fold_if_stale()
            out = self.eval_conv(x)
        return F.leaky_relu(out, negative_slope=0.05) if self.has_relu else out


class SPAB(nn.Module):
    """Swift parameter-free attention block: three Conv3XC (SiLU between), then
    ``(out3 + x) * (sigmoid(out3) - 0.5)``, the attention that costs no parameters. Returns
    the output, the first conv's output (fed to ``conv_cat`` by the last block) and the map.
    ``bias`` is accepted and unused, as in the authors' code (every Conv3XC has biases)."""

    def __init__(self, in_channels: int, mid_channels: int | None = None,
                 out_channels: int | None = None, bias: bool = False,
                 deploy: bool = False) -> None:
        super().__init__()
        mid_channels = in_channels if mid_channels is None else mid_channels
        out_channels = in_channels if out_channels is None else out_channels
        self.in_channels = in_channels
        self.c1_r = Conv3XC(in_channels, mid_channels, gain1=2, s=1, deploy=deploy)
        self.c2_r = Conv3XC(mid_channels, mid_channels, gain1=2, s=1, deploy=deploy)
        self.c3_r = Conv3XC(mid_channels, out_channels, gain1=2, s=1, deploy=deploy)
        self.act1 = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out1 = self.c1_r(x)
        out2 = self.c2_r(self.act1(out1))
        out3 = self.c3_r(self.act1(out2))
        sim_att = torch.sigmoid(out3) - 0.5
        return (out3 + x) * sim_att, out1, sim_att


@ARCH_REGISTRY.register()
class SPAN(nn.Module):
    """Input RGB in [0, 1]; it is mean-shifted and scaled by ``img_range`` inside, and the
    output is *not* scaled back (as the authors': the network learns to output [0, 1]).

    ``bias``: accepted for the authors' option files, unused (as theirs). ``cat_channels``
    (not the authors'): output channels of ``conv_cat`` and so the upsampler's input; None (the
    official topology) means ``feature_channels``; 20 builds NTIRE 2025 team 51's variant
    (Amazingren/NTIRE2025_ESR ``models/team51_SPAN.py``). ``deploy``: build the inference form
    (``eval_conv`` only); a state dict of the other form switches it on load anyway.
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, feature_channels: int = 48,
                 upscale: int = 4, bias: bool = True, img_range: float = 255.0,
                 rgb_mean: Sequence[float] = (0.4488, 0.4371, 0.4040),
                 cat_channels: int | None = None, deploy: bool = False) -> None:
        super().__init__()
        if len(rgb_mean) != num_in_ch:
            raise ValueError(f'rgb_mean has {len(rgb_mean)} values but num_in_ch is {num_in_ch}.')
        cat_channels = feature_channels if cat_channels is None else cat_channels
        self.img_range = img_range
        self.mean = torch.tensor(rgb_mean, dtype=torch.float32).view(1, -1, 1, 1)  # no key
        self.conv_1 = Conv3XC(num_in_ch, feature_channels, gain1=2, s=1, deploy=deploy)
        for i in range(1, 7):
            setattr(self, f'block_{i}', SPAB(feature_channels, bias=bias, deploy=deploy))
        self.conv_cat = nn.Conv2d(feature_channels * 4, cat_channels, 1, padding=0, bias=True)
        self.conv_2 = Conv3XC(feature_channels, feature_channels, gain1=2, s=1, deploy=deploy)
        self.upsampler = nn.Sequential(
            nn.Conv2d(cat_channels, num_out_ch * upscale**2, 3, padding=1, bias=True),
            nn.PixelShuffle(upscale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean.to(x)) * self.img_range
        out_feature = self.conv_1(x)
        out_b1, _, _ = self.block_1(out_feature)
        out_b2, _, _ = self.block_2(out_b1)
        out_b3, _, _ = self.block_3(out_b2)
        out_b4, _, _ = self.block_4(out_b3)
        out_b5, _, _ = self.block_5(out_b4)
        out_b6, out_b5_2, _ = self.block_6(out_b5)
        out_b6 = self.conv_2(out_b6)
        out = self.conv_cat(torch.cat([out_feature, out_b6, out_b1, out_b5_2], 1))
        return self.upsampler(out)

    def conv3xc_modules(self) -> dict[str, Conv3XC]:
        return {name: m for name, m in self.named_modules() if isinstance(m, Conv3XC)}

    @property
    def deploy(self) -> bool:
        """True when every Conv3XC is in the deploy form."""
        return all(m.deploy for m in self.conv3xc_modules().values())

    def switch_to_deploy(self) -> SPAN:
        """Fold every Conv3XC into its 3x3 ``eval_conv`` and drop the branches (irreversible:
        save the trained form first if training is to go on)."""
        for module in self.conv3xc_modules().values():
            module.switch_to_deploy()
        return self

    def match_state_dict_form(self, state: Mapping[str, torch.Tensor]) -> None:
        """Give each Conv3XC the form ``state`` holds for it (trained or deploy), so that
        ``state`` loads strictly; the weight loader calls it before comparing keys."""
        before = self.deploy
        for name, module in self.conv3xc_modules().items():
            module.match_form(state, f'{name}.')
        if self.deploy != before:
            logger.info(f'SPAN: the weights are in the {"deploy" if self.deploy else "trained"} '
                        f'form; the network switched to it.')

    def load_state_dict(self, state_dict: Mapping[str, torch.Tensor], strict: bool = True,
                        assign: bool = False):
        self.match_state_dict_form(state_dict)
        return super().load_state_dict(state_dict, strict, assign)
