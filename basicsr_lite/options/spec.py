"""The schema of basicsr_lite option files (BasicSR's keys and meanings), each key with its
doc string (the generated reference docs/reference/options.md and schemas/options.schema.json
show them)."""
from __future__ import annotations

from basicsr_lite.options.schema import ListOf, MapOf, Section, Spec, Typed, Value
from basicsr_lite.options.spec_parts import (NUM, OPT_STR, DATASETS_DOC, ExistingPath, FilePath,
                                             SpecKit, from_table, clip_check, dataset_spec,
                                             fraction_or_count, num_gpu_check,
                                             safetensors_installed, watched_metric, plan_spec)
from basicsr_lite.registry import ARCH_REGISTRY, HOOK_REGISTRY, METRIC_REGISTRY
from basicsr_lite.runtime import lr_scheduler, speed, speed_probe
from basicsr_lite.utils.checks import in_unit_interval, non_negative, positive

__all__ = ['SpecKit', 'option_spec', 'train_spec']


# ---- the whole file ------------------------------------------------------------------------------

def train_spec(model_cls: type) -> Section:
    fields: dict[str, Spec] = {
        'total_iter': Value((int,), required=True, check=positive,
                            doc='Iterations (optimizer steps) of the whole run.'),
        'warmup_iter': Value((int,), default=-1,
                             doc="BasicSR's linear warm-up: the learning rate rises from 0 over "
                                 "this many iterations (-1: none)."),
        'nan_policy': Value((str,), default='stop', choices=('stop', 'skip'),
                            doc="A step whose loss or gradients are not finite: 'stop' the run "
                                "with the weights from before it, or 'skip' the step and go "
                                "on."),
        'ema_decay': Value(NUM, default=0.0, check=in_unit_interval,
                           doc='Decay of the exponential moving average of net_g, validated and '
                               "saved as 'params_ema' (0: no EMA; e.g. 0.999)."),
        'amp': Value(OPT_STR, default=None, choices=speed_probe.AMP_CHOICES,
                     doc="Mixed precision: 'bf16' or 'fp16' autocast (fp16 with a gradient "
                         "scaler), 'auto' (bf16 where this machine runs it natively), null: "
                         "fp32."),
        'accumulate_grad_batches': Value((int,), default=1, check=positive,
                                         doc='Batches whose gradients are summed into one '
                                             'optimizer step (one iteration).'),
        'clip_grad_norm': Value((int, float, dict, type(None)), default=None,
                                check=clip_check(model_cls),
                                doc='Clip the global gradient norm to this maximum, or per '
                                    'network ({net_g: 0.5, ...}); null: no clipping.'),
        'scheduler': Typed(resolve=from_table(lr_scheduler.SCHEDULERS, 'scheduler'),
                           names=lambda: sorted(lr_scheduler.SCHEDULERS), kind='scheduler',
                           hidden=('optimizer', 'last_epoch', 'verbose', 'mode'),
                           nullable=True, default=None,
                           doc="The learning-rate schedule of every optimizer: its type and "
                               "arguments; null: the optimizer's lr throughout."),
        'scheduler_change': Value((str,), default='keep', choices=('keep', 'adopt'),
                                  doc="A resumed run whose train.scheduler was edited: 'keep' the "
                                      "saved schedule (with a warning) or 'adopt' the edited one "
                                      "from the saved position (also: --new-schedule)."),
        # speed (runtime/speed.py); none of them changes what a checkpoint holds
        'channels_last': Value((bool, str), default=False, check=speed_probe.bool_or_auto,
                               doc="Networks and batches in NHWC memory order (the same maths); "
                                   "'auto': where a start-up probe finds it faster."),
        'speed_policy': Value((str,), default='warn', choices=speed_probe.SPEED_POLICIES,
                              doc="amp / channels_last measured slower at start-up: 'warn' "
                                  "drops them and says so, 'strict' stops, 'off' and 'force' "
                                  "keep them without measuring."),
        'compile': Value((bool, dict), default=False, check=speed.compile_problems,
                         doc='torch.compile each trained network: true, or a mapping of its '
                             'backend, mode, dynamic and fullgraph arguments.'),
        'optimizer_impl': Value((str,), default='auto', choices=speed.OPTIMIZER_IMPLS,
                                doc="The optimizers' implementation: 'auto' (fused where torch "
                                    "has the kernel), 'fused', 'foreach' or 'for_loop'."),
        'cudnn_benchmark': Value((bool,), default=False,
                                 doc='Let cuDNN time its algorithms for each input shape '
                                     '(faster with fixed patch sizes).'),
        'matmul_precision': Value((str,), default='highest', choices=speed.MATMUL_PRECISIONS,
                                  doc="fp32 matrix products on GPUs that have the units: "
                                      "'highest' (fp32), 'high' (TF32) or 'medium' (bf16)."),
        'stop_check_freq': Value((int,), default=10, check=positive,
                                 doc='How often (in iterations) the processes of a distributed '
                                     'run agree on a stop request.'),
        'limit_train_batches': Value((int, float, type(None)), default=None,
                                     check=fraction_or_count,
                                     doc='Batches per epoch: a count, or a fraction in (0, 1] of '
                                         "the epoch's batches (rounded up); null: all."),
        'plan': plan_spec(),
    }
    fields.update(model_cls.train_keys(SpecKit))
    return Section(fields=fields, required=True,
                   doc='How to train: iterations, optimizers, losses, schedule, speed; only in '
                       'training files.')


def path_spec(model_cls: type) -> Section:
    """``path``: where runs read weights and states from, and where they write."""
    path_fields: dict[str, Spec] = {
        'experiments_root': Value(OPT_STR, default=None,
                                  doc="The training run's folder; null: experiments/<name>."),
        'results_root': Value(OPT_STR, default=None,
                              doc="test.py's output folder; null: results/<name>."),
        'resume_state': FilePath(doc='A training state (.state) to resume from: weights, '
                                     'optimizers, schedulers and the loop position.'),
        'branch_from': ExistingPath(doc="Start this new experiment from another one's training "
                                        "state: a .state file, or an experiment folder (its "
                                        "newest state)."),
    }
    for key in model_cls.network_keys:
        net = key.split('_', 1)[1]
        path_fields[f'pretrain_network_{net}'] = FilePath(
            doc=f'Weights to load into {key} before training or testing (.pth or '
                f'.safetensors).')
        path_fields[f'strict_load_{net}'] = Value(
            (bool,), default=True,
            doc=f'Every tensor of pretrain_network_{net} must fit {key} exactly; false loads '
                f'the tensors that fit and warns about the others.')
        path_fields[f'param_key_{net}'] = Value(
            (str,), default='params',
            doc=f"The state dict of pretrain_network_{net} to load ('params', 'params_ema', "
                f"...); a bare state dict is loaded as it is.")
    return Section(fields=path_fields, default=dict,
                   doc='Where the run reads weights and states from, and where it writes.')


def val_spec() -> Section:
    """``val``: validation during training, and what test.py computes and saves."""
    return Section(nullable=True, default=None,
                   doc='Validation during training (and the metrics of test.py); null: none.',
                   fields={
        'val_freq': Value((int,), default=5000, check=positive,
                          doc='Validate every this many iterations (and after the last one).'),
        'save_img': Value((bool,), default=False,
                          doc='Save the output images under visualization/<dataset>/.'),
        'suffix': Value(OPT_STR, default=None,
                        doc="test.py: the suffix of saved image names; null: the run's name "
                            "(training uses the iteration)."),
        'pbar': Value((bool,), default=False, doc='A progress bar over the validation images.'),
        'tensor_metrics': Value((bool,), default=True,
                                doc="PSNR and SSIM computed in torch on the model's device "
                                    "(the same values as BasicSR's numpy functions)."),
        'limit_batches': Value((int, type(None)), default=None, check=positive,
                               doc='Validate on the first N images of each validation set; null: '
                                   'all.'),
        'tb_images': Value((int,), default=0, check=non_negative,
                           doc='LR | SR | GT of the first N images of each validation set to '
                               'TensorBoard at each validation (0: none).'),
        'tb_image_size': Value((int,), default=256, check=positive,
                               doc='Longest side, in pixels, of each TensorBoard image panel.'),
        'tb_image_fit': Value((str,), default='resize', choices=('resize', 'crop'),
                              doc="How a larger image is made to fit tb_image_size: 'resize' "
                                  "(downsized) or 'crop' (its centre)."),
        'early_stopping': watched_metric(
            'Stop training (as finished) when a validation metric has stopped improving; '
            'null: never.', {
                'patience': Value((int,), required=True, check=positive,
                                  doc='Validations in a row without an improvement that stop '
                                      'the run.'),
                'min_delta': Value(NUM, default=0.0, check=non_negative,
                                   doc='The smallest change that counts as an improvement.'),
            }),
        'tile': Section(nullable=True, default=None,
                        doc='Run the network tile by tile on each validation image (less '
                            'memory); null: whole images.',
                        fields={
            'size': Value((int,), required=True, check=positive,
                          doc='Tile side, in LQ pixels.'),
            'overlap': Value((int,), default=16, check=non_negative,
                             doc='LQ pixels each tile overlaps its neighbours by.'),
        }),
        'metrics': MapOf(spec_for=lambda _: Typed(
            resolve=METRIC_REGISTRY.get, names=METRIC_REGISTRY.keys, kind='metric',
            hidden=('img', 'img2'),
            doc='One metric: its type (a registered metric function) and arguments.',
            fields={'better': Value(OPT_STR, default=None, choices=(None, 'higher', 'lower'),
                                    doc="Which direction is better, for the best checkpoints "
                                        "and early stopping; null: the metric's own.")}),
            default=dict,
            doc='The metrics computed on each validation set, by the name they are logged '
                'under.'),
    })


def logger_spec() -> Section:
    """``logger``: what a training run logs and saves, and how often."""
    return Section(default=dict, doc='What a training run logs and saves, and how often.',
                   fields={
        'print_freq': Value((int,), default=100, check=positive,
                            doc='Log the losses, learning rates and timings every this many '
                                'iterations.'),
        'save_checkpoint_freq': Value((int,), default=5000, check=positive,
                                      doc='Save the networks and a training state every this '
                                          'many iterations.'),
        'use_tb_logger': Value((bool,), default=True,
                               doc='Write TensorBoard logs to tb_logger/ in the experiment '
                                   'folder.'),
        'keep_last_checkpoints': Value((int, type(None)), default=None, check=positive,
                                       doc='Keep only the newest N checkpoints (networks and '
                                           'states); null: keep all.'),
        'save_format': Value((str,), default='pth', choices=('pth', 'safetensors'),
                             check=safetensors_installed,
                             doc="Network files: BasicSR's .pth, or .safetensors whose metadata "
                                 "names the network and its arguments."),
        'save_checkpoint_freq_epochs': Value((int, type(None)), default=None, check=positive,
                                             doc='Also save a checkpoint every this many '
                                                 'epochs; null: by iterations only.'),
        'keep_best_checkpoints': watched_metric(
            "Keep the generator of the k best validations by a metric "
            "(models/net_g_best_<metric>.pth); null: none.", {
                'k': Value((int,), default=1, check=positive,
                           doc='How many of the best to keep.'),
            }),
        'system_metrics': Value((bool,), default=True,
                                doc='CPU, memory and GPU use to TensorBoard on logging '
                                    'iterations.'),
        'check_interop': Value((bool,), default=False,
                               doc='Load each saved net_g through spandrel and compare its '
                                   'output (one log line per checkpoint).'),
        'tb_histogram_freq': Value((int,), default=0, check=non_negative,
                                   doc='Weight and gradient histograms to TensorBoard every this '
                                       'many iterations (0: never).'),
        'progress_bar': Value((bool, str), default='auto', choices=('auto', True, False),
                              doc="A progress bar over the iterations; 'auto': when the output "
                                  "is a terminal."),
        'wandb': Section(nullable=True, default=None,
                         doc='Also log to Weights & Biases (needs the wandb package); null or '
                             'no project: off.',
                         fields={
            'project': Value(OPT_STR, default=None,
                             doc='The wandb project; null: wandb is off.'),
            'resume_id': Value(OPT_STR, default=None,
                               doc='The wandb run to continue; null: the id this experiment '
                                   'saved when resuming, else a new run.'),
            'entity': Value(OPT_STR, default=None,
                            doc="The wandb user or team; null: wandb's default."),
            'mode': Value(OPT_STR, default=None,
                          choices=(None, 'online', 'offline', 'disabled'),
                          doc="wandb's mode; 'offline' logs locally for a later wandb sync; "
                              "null: wandb's default."),
        }),
        'aim': Section(nullable=True, default=None,
                       doc='Also log to Aim (needs the aim package); null: off.', fields={
            'repo': Value(OPT_STR, default=None,
                          doc='The Aim repository; null: the experiments folder.'),
            'experiment': Value(OPT_STR, default=None,
                                doc="The Aim experiment; null: the run's name."),
        }),
    })


def option_spec(model_cls: type, is_train: bool) -> Section:
    """The spec of a whole option file for ``model_cls`` (train or test)."""
    # Testing needs only the generator (BasicSR's test files of GAN models have no network_d).
    networks = {key: Typed(resolve=ARCH_REGISTRY.get, names=ARCH_REGISTRY.keys, kind='arch',
                           required=is_train or key == 'network_g',
                           nullable=not is_train and key != 'network_g', default=None,
                           open_types=AUTO_NETWORK if key == 'network_g' else {},
                           doc=NETWORK_DOCS.get(key, f'The network {key}: its type (a '
                                                     f'registered architecture) and arguments.'))
                for key in model_cls.network_keys}
    fields: dict[str, Spec] = {
        'name': Value((str,), required=True,
                      doc="The run's name: its folder under experiments/ (or results/) and the "
                          "log's."),
        'model_type': Value((str,), default='SRModel',
                            doc='The model: what a training step does with the networks and '
                                'losses (a registered model).'),
        'scale': Value((int,), default=1, check=positive,
                       doc='GT size / LQ size (1: restoration at the same size): the datasets, '
                           'the validation padding and tiling, the bicubic baseline and the saved '
                           'files use it.'),
        'num_gpu': Value((int, str), default='auto', check=num_gpu_check,
                         doc="GPUs of this process: 0 (the CPU), 1, or 'auto' (1 when CUDA is "
                             "available); more need a distributed launch."),
        'manual_seed': Value((int, type(None)), default=None,
                             doc='Seed of the random streams (data order, augmentation, '
                                 'initialisation); null: a random one, written to the log.'),
        'find_unused_parameters': Value((bool,), default=False,
                                        doc='Distributed runs: let DDP look for parameters '
                                            'that get no gradient in a step (slower).'),
        'datasets': MapOf(spec_for=dataset_spec, key_pattern=r'(train|val|test)(_\w+)?',
                          key_hint="dataset keys are 'train', 'val', 'val_<x>' or 'test_<x>'",
                          required=True, doc=DATASETS_DOC),
        **networks,
        **model_cls.option_keys(SpecKit),
        'path': path_spec(model_cls),
        'val': val_spec(),
        'logger': logger_spec(),
        'hooks': ListOf(item=Typed(resolve=HOOK_REGISTRY.get, names=HOOK_REGISTRY.keys,
                                   kind='hook', extensible=True,
                                   doc='A hook: its type (a registered Hook class) and '
                                       'arguments.'),
                        default=list,
                        doc='Hooks that run beside the training loop, each built from its '
                            'registered type and arguments.'),
        'dist_params': Section(default=dict, doc='Distributed training (torchrun, SLURM).',
                               fields={
            'backend': Value(OPT_STR, default=None, choices=(None, 'nccl', 'gloo'),
                             doc='The process-group backend; null: nccl with CUDA, else gloo '
                                 '(nccl without CUDA becomes gloo).'),
            'port': Value((int,), default=29500, check=positive,
                          doc='SLURM launches: the rendezvous port, when MASTER_PORT is not '
                              'set.'),
            'timeout': Value(NUM, default=1800, check=positive,
                             doc='Seconds a collective waits for a missing process before '
                                 'failing.'),
        }),
    }
    if is_train:
        fields['train'] = train_spec(model_cls)
    return Section(fields=fields, doc='A basicsr_lite option file.')


# parse.resolve_auto_network replaces it before the check
AUTO_NETWORK = {'auto': 'The network and its arguments detected from path.pretrain_network_g '
                        '(arguments given beside it win).'}
NETWORK_DOCS = {
    'network_g': 'The generator (the network trained and tested): its type (a registered '
                 'architecture) and arguments; {type: auto} reads them from '
                 'path.pretrain_network_g.',
    'network_d': 'The discriminator of a GAN model (training only): its type (a registered '
                 'architecture) and arguments.',
}
