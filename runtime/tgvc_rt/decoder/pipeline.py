"""The decoder: .tgv -> frames, one keyframe group at a time, each group in windows (bounded memory).

parsed .tgv -> per group: decode its two keyframes and its tracks
          -> interpolation: "interp" (the model set's IFNet steered by the tracks) or "warp" (classical)
          -> (mode "diffusion") guided latent diffusion refinement -> emit frames in order

Every stage is a generator over the group's frames: the interpolators yield frame after frame and
compute dense motion and model inputs per batch or window of frames, the diffusion refinement takes
the interpolated frames of one diffusion window at a time, and the frames go out as they are made.
What the decoder holds for a group is thus bounded by the window sizes, not the group's length
(beyond the group's tracks and a few numbers per frame).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from ..bitstream import Bitstream, read_bitstream
from ..codec.keyframe_formats import KeyframeReader
from ..codec.keyframe_sequence import is_intra_payload
from ..codec.trajectories import decode_tracks
from ..errors import BitstreamError, ModelSetError, OptionError, TgvcError
from ..types import Tracks
from .interpolate import InterpOptions
from .interpolate import iter_group as interp_group
from .warp import WarpOptions
from .warp import iter_group as warp_group

MODES = ("interp", "warp", "diffusion")
MODEL_MODES = ("interp", "diffusion")  # modes that need the model set


@dataclass
class DecodeOptions:
    mode: str = "interp"
    warp: WarpOptions = field(default_factory=WarpOptions)
    interp: InterpOptions = field(default_factory=InterpOptions)
    diffusion: object | None = None      # decoder.diffusion.DiffusionOptions (mode "diffusion")
    model_set: str = "default"           # name or path of the model set (modes "interp", "diffusion")
    check_model_set: bool = True         # refuse streams made for another model set
    device: str = "cpu"                  # backend device of the model set: cpu | cuda | tensorrt | auto
    threads: int | None = None           # CPU threads of the backend (None: its default)
    keyframe_filter: Callable[[np.ndarray, float], np.ndarray] | None = None  # experimental:
    #                                      applied to every decoded keyframe (image, coded scale factor) before
    #                                      the interpolator sees it, e.g. a restoration net; None: off
    conceal: bool = False                # decode a damaged group from its keyframes alone, replace a damaged
    #                                      keyframe by its neighbour (DecodeStats.concealed, .concealed_keyframes)
    device_loop: str = "auto"            # interp on a GPU backend: "auto" (the device-resident loop where CUDA and
    #                                      the frame kernels work, else the host loop), "off" (host loop), "cuda"
    #                                      (the device loop on the GPU, an error where it cannot run), or
    #                                      "emulated" (the device loop on NumPy buffers: tests)
    device_models: Callable | None = None  # (session, device) -> DeviceModel: how the device loop runs a model
    #                                        (None: by the session's backend; checks inject test-only runtimes)


@dataclass
class DecodeStats:
    seconds: dict[str, float] = field(default_factory=dict)
    frames: int = 0
    concealed: list[dict] = field(default_factory=list)  # one entry per concealed group (DecodeOptions.conceal)
    concealed_keyframes: list[dict] = field(default_factory=list)  # one entry per concealed keyframe
    backend: str = ""    # what ran the models, and why nothing better did (backends.select.BackendChoice.describe)
    loop: str = ""       # "host", or "device (<device>)" for the device-resident interpolation loop, with why not

    def add(self, stage: str, dt: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + dt


def _open_model_set(bs: Bitstream, options: DecodeOptions):
    from ..models import load_model_set, model_set_hash

    models = load_model_set(options.model_set, device=options.device, threads=options.threads)
    models.max_size = (bs.header.width, bs.header.height)  # the GPU engines' profiles
    if options.check_model_set and model_set_hash(models.path) != bs.header.model_set_hash:
        raise ModelSetError(f"this stream was made for model set {bs.header.model_set_hash.hex()}, "
                            f"but {options.model_set!r} is {model_set_hash(models.path).hex()}; "
                            f"pass the matching --models or decode with --mode warp")
    return models


def _open_interpolator(models, options: DecodeOptions, device) -> Callable:
    """The group interpolator, ``(key_a, key_b, tracks) -> iterator over the group's frames``: the model set's
    IFNet in the model modes (on the device-resident loop when ``device`` is given, ``_open_device``), else
    the warp decoder (mode "warp", or "diffusion" with a set that has no interpolator)."""
    if models is not None and models.has("interpolator"):
        options.interp.validate()
        session = models.session("interpolator")

        def host(key_a, key_b, tracks):
            return interp_group(key_a, key_b, tracks, session.run, options.interp)

        if device is None:
            return host
        from .device_loop import iter_group_device, supported

        model = _device_model(session, device, options)

        def on_device(key_a, key_b, tracks):
            if not supported(*key_a.shape[:2], options.interp):
                return host(key_a, key_b, tracks)
            return iter_group_device(key_a, key_b, tracks, device, model, options.interp)

        return on_device
    if options.mode == "interp":
        raise ModelSetError(f"model set {options.model_set!r} has no interpolator; decode with --mode warp")
    return lambda key_a, key_b, tracks: warp_group(key_a, key_b, tracks, options.warp)


def _open_device(models, options: DecodeOptions, stats: DecodeStats):
    """The device of the decode loop (interpolation and diffusion), or None for the host loop (``stats.loop``
    says which and why). Opened before the model sessions, which then share its stream."""
    if options.device_loop not in ("auto", "off", "cuda", "emulated"):
        raise OptionError(f"device_loop {options.device_loop!r}: choose auto, off, cuda or emulated")
    if options.device_loop == "emulated":
        from ..backends.device import EmulatedDevice

        stats.loop = "device (emulated)"
        return EmulatedDevice()
    if options.device_loop == "off" or (options.device_loop == "auto" and not models.backend.on_gpu):
        stats.loop = "host"
        return None
    try:
        from ..backends.cuda_device import CudaDevice

        device = CudaDevice()
    except (TgvcError, ImportError) as err:
        if options.device_loop == "cuda":
            raise OptionError(f"the CUDA decode loop cannot run here: {err}") from err
        stats.loop = f"host (device loop unavailable: {err})"
        return None
    models.stream = device.stream
    stats.loop = f"device ({device.name})"
    return device


def _device_model(session, device, options: DecodeOptions):
    """A model session as a ``DeviceModel`` on ``device``: the injected factory (checks), the host session
    itself (the emulated device), our TensorRT runner, or ONNX Runtime with device I/O binding."""
    if options.device_models is not None:
        return options.device_models(session, device)
    if options.device_loop == "emulated":
        from ..backends.device import HostModel

        return HostModel(session)
    if getattr(session, "backend", "") == "tensorrt":
        from ..backends.device import TrtModel

        return TrtModel(session, device)
    from ..backends.ort_device import OrtDeviceModel

    return OrtDeviceModel(session, device)


def _open_diffusion(bs: Bitstream, models, options: DecodeOptions, device) -> Callable:
    """The group refiner, ``(warp frames, key_a, key_b, tracks, group, timings) -> refined frames``: on the
    device loop when ``device`` is given and it takes the options (``device_diffusion.supported``)."""
    from .diffusion import DiffusionOptions, iter_diffused

    dopts = options.diffusion or DiffusionOptions()
    seed = lambda g: (bs.header.noise_seed + g) % (1 << 63)  # noqa: E731 - one expression, used twice
    from . import device_diffusion

    if device is not None and device_diffusion.supported(dopts):
        from ..diffusion.guidance_native import select_guidance_factory

        dm = device_diffusion.DeviceDiffusionModels(
            *(_device_model(models.session(k), device, options) for k in ("vae_encoder", "vae_decoder", "unet")),
            models.latent_mean, models.latent_std, models.alphas_cumprod())
        factory = dopts.guidance_factory or select_guidance_factory(dopts.guidance_impl, dopts.threads)

        def on_device(warp_frames, key_a, key_b, tracks, group_index, timings):
            return device_diffusion.iter_diffused_device(warp_frames, tracks.num_frames, key_a, key_b, tracks, dm,
                                                         dopts, device, seed(group_index), factory)

        return on_device

    def run(warp_frames, key_a, key_b, tracks, group_index, timings):
        return iter_diffused(warp_frames, tracks.num_frames, key_a, key_b, tracks, models, dopts,
                             seed=seed(group_index), timings=timings)

    return run


def iter_decoded_frames(stream: bytes | Bitstream, options: DecodeOptions = DecodeOptions(),
                        stats: DecodeStats | None = None) -> Iterator[np.ndarray]:
    """Yield decoded RGB frames in display order. ``stream``: a .tgv stream's bytes, or the stream
    already parsed (``read_bitstream(data, tolerate_damaged_groups=options.conceal,
    tolerate_damaged_keyframes=options.conceal)``), which is not parsed again."""
    if options.mode not in MODES:
        raise OptionError(f"--mode {options.mode!r}: choose one of {', '.join(MODES)}")
    stats = stats if stats is not None else DecodeStats()
    if isinstance(stream, Bitstream):
        bs = stream
        if bs.damaged_groups and not options.conceal:  # as the strict read of the bytes would have failed
            g, why = min(bs.damaged_groups.items())
            group = bs.groups[g]
            raise BitstreamError(f"corrupt .tgv stream: group {g} (frames {group.start}..{group.end}): {why}")
        if bs.damaged_keyframes and not options.conceal:
            k, why = min(bs.damaged_keyframes.items())
            raise BitstreamError(f"corrupt .tgv stream: keyframe {bs.keyframe_indices().index(k)} (frame {k}): {why}")
    else:
        bs = read_bitstream(stream, tolerate_damaged_groups=options.conceal,
                            tolerate_damaged_keyframes=options.conceal)
    h = bs.header
    reader = KeyframeReader(h.keyframe_codec, h.width, h.height)
    t0 = time.perf_counter()
    models = _open_model_set(bs, options) if options.mode in MODEL_MODES else None
    device = _open_device(models, options, stats) if models is not None else None
    if device is not None and options.device_loop == "auto":
        for key in ("interpolator", *(("vae_encoder", "vae_decoder", "unet") if options.mode == "diffusion" else ())):
            if models.has(key):
                models.session(key)  # open them now, on the device's stream
        if not models.backend.on_gpu:  # the GPU backend could not start a model: the chain went on to the CPU
            device.close()
            device, stats.loop = None, "host"
    if models is not None:
        stats.backend = models.backend.describe()
    interpolate = _open_interpolator(models, options, device)
    diffuse = _open_diffusion(bs, models, options, device) if options.mode == "diffusion" else None
    stats.add("models", time.perf_counter() - t0)  # verify the set's files, open the sessions

    keys = _Keyframes(bs, reader, options.conceal, stats, options.keyframe_filter)
    for g, group in enumerate(bs.groups):
        key_a, key_b = keys.image(group.start), keys.image(group.end)
        keys.forget_before(group.start)
        num = group.end - group.start + 1
        t0 = time.perf_counter()
        tracks = _group_tracks(bs, g, options.conceal, stats, keys)
        stats.add("tracks", time.perf_counter() - t0)
        if num == 1:
            frames = iter([key_a.copy()])
        else:
            frames = _timed(interpolate(key_a, key_b, tracks), stats, "interpolation")
            if diffuse is not None and num > 2:
                frames = _timed(diffuse(frames, key_a, key_b, tracks, g, stats.seconds), stats, "diffusion",
                                inner="interpolation")
        if g > 0:
            next(frames)  # the start keyframe was the previous group's last frame
        for frame in frames:
            stats.frames += 1
            yield frame


def _timed(frames: Iterator[np.ndarray], stats: DecodeStats, stage: str,
           inner: str | None = None) -> Iterator[np.ndarray]:
    """``frames``, adding the time spent making each to ``stats`` under ``stage``, less what ``stats`` gained
    under ``inner`` meanwhile (a stage that draws on another one's frames)."""
    frames = iter(frames)
    while True:
        t0 = time.perf_counter()
        before = stats.seconds.get(inner, 0.0) if inner else 0.0
        frame = next(frames, None)
        spent = time.perf_counter() - t0 - ((stats.seconds.get(inner, 0.0) - before) if inner else 0.0)
        stats.add(stage, spent)
        if frame is None:
            return
        yield frame


class _Keyframes:
    """A stream's keyframe images, asked for in ascending order and each decoded once (sequence codecs need
    that).

    Without ``conceal`` a keyframe that does not decode is an error naming it. With ``conceal`` a damaged
    keyframe (its section's CRC failed, or its payload does not decode) is replaced by the image of the
    last keyframe that decoded (keyframes before the first one that decodes: by that one), and is recorded
    in ``stats.concealed_keyframes``. With a sequence codec the inter keyframes after it reference it, so
    they are replaced too, up to the next intra keyframe, where the reader starts afresh."""

    def __init__(self, bs: Bitstream, reader: KeyframeReader, conceal: bool, stats: DecodeStats,
                 keyframe_filter: Callable[[np.ndarray, float], np.ndarray] | None = None):
        self.bs, self.reader, self.conceal, self.stats = bs, reader, conceal, stats
        self.keyframe_filter = keyframe_filter
        self.order = bs.keyframe_indices()
        self.number = {k: n for n, k in enumerate(self.order)}
        self.next = 0                          # position in ``order`` of the next keyframe to decode
        self.images: dict[int, np.ndarray] = {}
        self.concealed: dict[int, dict] = {}   # frame -> its entry in stats.concealed_keyframes
        self.last: tuple[int, np.ndarray] | None = None  # the last keyframe that decoded: frame, image
        self.lost: int | None = None           # the damaged keyframe whose segment has lost its references
        self.waiting: list[int] = []           # concealed keyframes before the first one that decodes

    def name(self, k: int) -> str:
        return f"keyframe {self.number[k]} (frame {k})"

    def image(self, k: int) -> np.ndarray:
        while k not in self.images:
            if self.next >= len(self.order):
                raise BitstreamError("corrupt .tgv stream: no keyframe decodes, nothing to conceal them from")
            self._decode_next()
        return self.images[k]

    def forget_before(self, k: int) -> None:
        for old in [i for i in self.images if i < k]:
            del self.images[old]

    def _decode_next(self) -> None:
        k = self.order[self.next]
        self.next += 1
        payload = self.bs.keyframes[k]
        why = self.bs.damaged_keyframes.get(k)
        if why is None and self.lost is not None:
            if is_intra_payload(payload):
                self.reader.reset()  # a fresh session: decoding resumes as in a clean decode
                self.lost = None
            else:
                why = f"inter keyframe after damaged {self.name(self.lost)} in its segment"
        if why is None:
            t0 = time.perf_counter()
            try:
                image = self.reader.decode(payload)
            except BitstreamError as e:
                if not self.conceal:
                    raise BitstreamError(f"corrupt .tgv stream: {self.name(k)}: {e}") from e
                why = str(e)
            finally:
                self.stats.add("keyframes", time.perf_counter() - t0)
        if why is None:
            if self.keyframe_filter is not None:
                t0 = time.perf_counter()
                image = self.keyframe_filter(image, self.reader.last_scale)
                self.stats.add("keyframe_filter", time.perf_counter() - t0)
            self.images[k], self.last = image, (k, image)
            for w in self.waiting:
                self.images[w] = image
                self.concealed[w]["source"] = k
            self.waiting = []
            return
        if not self.conceal:
            raise BitstreamError(f"corrupt .tgv stream: {self.name(k)}: {why}")
        if self.reader.sequence and self.lost is None:
            self.lost = k
        entry = {"keyframe": self.number[k], "frame": k, "reason": why, "source": None}
        self.concealed[k] = entry
        self.stats.concealed_keyframes.append(entry)
        if self.last is None:
            self.waiting.append(k)
        else:
            entry["source"], self.images[k] = self.last


def _group_tracks(bs: Bitstream, g: int, conceal: bool, stats: DecodeStats, keys: _Keyframes) -> Tracks:
    """Group ``g``'s tracks. A group whose section is damaged (a tolerant read) or, with ``conceal``, whose
    track payload fails to decode gets none, so the interpolator fills it from its two keyframes alone,
    and is recorded in ``stats.concealed``; without ``conceal`` a bad payload is an error naming the group.
    A group with a concealed keyframe keeps its tracks and is recorded in ``stats.concealed`` too."""
    group, h = bs.groups[g], bs.header
    num = group.end - group.start + 1
    why = bs.damaged_groups.get(g)
    tracks = None
    if why is None:
        try:
            tracks = decode_tracks(group.tracks, num, h.width, h.height)
        except BitstreamError as e:
            if not conceal:
                raise BitstreamError(f"corrupt .tgv stream: group {g} (frames {group.start}..{group.end}): "
                                     f"{e}") from e
            why = str(e)
    lost = [k for k in dict.fromkeys((group.start, group.end)) if k in keys.concealed]
    if why is None and not lost:
        return tracks
    reasons = [why] if why is not None else []
    reasons += [f"{keys.name(k)}: {keys.concealed[k]['reason']}" for k in lost]
    method = (f"interpolated from keyframes {group.start} and {group.end} "
              + ("without tracks" if why is not None else "with the group's tracks"))
    method += "".join(f"; keyframe {k} replaced by keyframe {keys.concealed[k]['source']}" for k in lost)
    first = group.start if g == 0 and group.start in lost else group.start + 1
    last = group.end if group.end in lost else group.end - 1
    stats.concealed.append({"group": g, "frames": [group.start, group.end], "reason": "; ".join(reasons),
                            "concealed_frames": list(range(first, last + 1)), "method": method})
    return tracks if why is None else Tracks.empty(num)
