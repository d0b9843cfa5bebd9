"""The one ffmpeg helper: audio decoding, probing, frame encoding, concatenation and muxing.

A system ffmpeg on PATH is preferred; otherwise the static binary shipped by imageio-ffmpeg
is used, so a pip-only install is complete.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO

import ffmpeg

from vestnik.errors import VestnikError
from vestnik.io import atomic_write, disk_full_error, tool_disk_full_reason

if TYPE_CHECKING:
    import numpy as np

VIDEO_CODEC_ARGS = {
    "vcodec": "libx264",
    "pix_fmt": "yuv420p",
    "preset": "veryfast",
    "crf": 18,
    "tune": "stillimage",
    "bf": 0,
}
"""Fixed encoder settings: every chunk is encoded alike, so chunks join without re-encoding."""


@functools.cache
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary: `VESTNIK_FFMPEG`, a system ffmpeg, or imageio-ffmpeg's."""
    configured = os.environ.get("VESTNIK_FFMPEG")
    if configured:
        return configured
    system = shutil.which("ffmpeg")
    if system:
        return system
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


REPORT_LINES = 6
"""Lines of ffmpeg's report an error message keeps: enough for the cause and its context."""
_PROBLEM_WORDS = re.compile(
    r"rror|failed|invalid|cannot|could not|unable|not found|no such|denied|impossible|"
    r"mismatch|unsupported|too large|no space|quota|killed",
    re.IGNORECASE,
)
_PROGRESS_LINE = re.compile(
    r"^(frame|size)=|^(Stream #|Input #|Output #|Duration:|Metadata:)"
    r"|^(ffmpeg version|built with|configuration:|lib\w+\s+\d)"
)
"""Lines of the banner, the stream listing and progress: never the cause of a failure."""


def report_detail(report: str) -> str:
    """The lines of an ffmpeg report that explain a failure, joined into one line.

    ffmpeg ends every failure with generic lines ("Conversion failed!"); the cause comes
    earlier, so lines naming a problem are kept first, and progress and stream listings dropped.
    """
    lines = [line.strip() for line in report.splitlines() if line.strip()]
    lines = [line for line in lines if not _PROGRESS_LINE.search(line)]
    problems = [line for line in lines if _PROBLEM_WORDS.search(line)]
    return " | ".join((problems or lines)[-REPORT_LINES:]) or "no report"


def ffmpeg_error(
    what: str, path: object, code: int, report: str, written: Path | None = None
) -> VestnikError:
    """The error of a failed ffmpeg run: a full disk (as `io.atomic_write` reports one) when
    `written` could not be written, else what ffmpeg could not do, with its report's cause."""
    detail = report_detail(report)
    if code < 0:
        detail += f" (ffmpeg killed by {signal.Signals(-code).name})"
    reason = tool_disk_full_reason(code, report, written) if written is not None else None
    if reason:
        return disk_full_error(path, reason, f"ffmpeg: {detail}")
    return VestnikError(f"ffmpeg could not {what}: {detail}", path=path)


def _run(
    stream: ffmpeg.nodes.OutputStream, what: str, path: object, written: Path | None = None
) -> bytes:
    """Run one ffmpeg command; its stdout, or the error of `ffmpeg_error`."""
    proc = subprocess.run(
        ffmpeg.compile(stream, cmd=ffmpeg_exe()), stdin=subprocess.DEVNULL,
        capture_output=True,
    )
    if proc.returncode != 0:
        report = proc.stderr.decode("utf-8", "replace")
        raise ffmpeg_error(what, path, proc.returncode, report, written)
    return proc.stdout


def _existing_audio(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise VestnikError("audio file not found", path=path)
    if path.stat().st_size == 0:
        raise VestnikError("audio file is empty (0 bytes)", path=path)
    return path


def read_audio(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """Decode any audio file to float32 mono at `sample_rate`.

    libsndfile reads wav/flac/ogg/mp3 exactly; anything else goes through ffmpeg. Resampling
    uses soxr (very high quality, deterministic).
    """
    import numpy as np
    import soundfile as sf
    import soxr

    path = _existing_audio(path)
    try:
        data, native_rate = sf.read(path, dtype="float32", always_2d=True)
        samples = data.mean(axis=1)
    except (sf.LibsndfileError, RuntimeError):
        stream = ffmpeg.input(str(path)).output(
            "pipe:", format="f32le", ac=1, ar=sample_rate, acodec="pcm_f32le"
        )
        samples = np.frombuffer(_run(stream, "decode the audio", path), dtype=np.float32)
        native_rate = sample_rate
    if native_rate != sample_rate:
        samples = soxr.resample(samples, native_rate, sample_rate, quality="VHQ")
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if samples.size == 0:
        raise VestnikError("audio file holds no samples", path=path)
    return samples


def audio_duration(path: str | os.PathLike) -> float | None:
    """Seconds of audio in a file, from its header (nothing is decoded); None if unknown.

    A PCM WAV file that holds what it claims is read here (the merge step needs no audio
    libraries for it); libsndfile reads the header of other wav/flac/ogg/mp3 whatever the
    extension says; other formats are asked of ffmpeg, which also goes by content.
    """
    path = _existing_audio(path)
    with open(path, "rb") as handle:
        wave = _wave_layout(handle)
    whole = wave and wave.data_size not in WAV_SIZE_UNKNOWN and wave.data_size <= wave.held
    if whole and wave.format_tag in PCM_FORMAT_TAGS and wave.block_align and wave.sample_rate:
        return wave.data_size // wave.block_align / wave.sample_rate
    import soundfile as sf

    try:
        info = sf.info(path)
        if info.samplerate > 0 and info.frames > 0:
            return info.frames / info.samplerate
    except (sf.LibsndfileError, RuntimeError):
        pass
    return probe(path, count_frames=False)["duration"]


WAV_SIZE_UNKNOWN = (0, 0xFFFFFFFF)
"""Data sizes that streaming recorders write before they know the length: no claim at all."""
PCM_FORMAT_TAGS = (1, 3)
"""WAVE format tags whose data size divides into whole frames: integer PCM and IEEE float."""


@dataclass(frozen=True)
class WaveLayout:
    """What a RIFF/WAVE header says: the `fmt ` fields and the `data` chunk's claimed size,
    with `held` the bytes the file really has after the chunk's header."""

    format_tag: int
    sample_rate: int
    byte_rate: int
    block_align: int
    data_size: int
    held: int


def _wave_layout(handle: BinaryIO) -> WaveLayout | None:
    """The layout of the RIFF/WAVE file open in `handle`, or None for other files."""
    head = handle.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    fmt = b""
    while True:
        chunk = handle.read(8)
        if len(chunk) < 8:
            return None
        kind, size = chunk[:4], int.from_bytes(chunk[4:], "little")
        if kind == b"fmt ":
            fmt = handle.read(size + size % 2)
        elif kind == b"data":
            if len(fmt) < 14:
                return None
            held = os.fstat(handle.fileno()).st_size - handle.tell()
            field = [int.from_bytes(fmt[a:b], "little") for a, b in ((0, 2), (4, 8), (8, 12),
                                                                       (12, 14))]
            return WaveLayout(*field, data_size=size, held=held)
        else:
            handle.seek(size + size % 2, os.SEEK_CUR)


def wav_shortfall(path: str | os.PathLike) -> tuple[float, float] | None:
    """(seconds the header claims, seconds the file holds) of a RIFF/WAVE file cut short.

    libsndfile quietly reads what is there, so a truncated copy would pass as a short
    recording; None for other files, unknown sizes, and files that hold what they claim.
    """
    with open(path, "rb") as handle:
        wave = _wave_layout(handle)
    if (not wave or not wave.byte_rate or wave.data_size in WAV_SIZE_UNKNOWN
            or wave.data_size <= wave.held):
        return None
    return wave.data_size / wave.byte_rate, wave.held / wave.byte_rate


def write_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit PCM mono wav atomically (clipping to [-1, 1])."""
    import numpy as np
    import soundfile as sf

    pcm = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    with atomic_write(path) as tmp:
        sf.write(tmp, pcm, sample_rate, subtype="PCM_16", format="WAV")


_STREAM_RE = re.compile(r"Stream #\d+:\d+.*?: (Video|Audio): (\w+)(.*)")
_DURATION_RE = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")


def probe(path: str | os.PathLike, count_frames: bool = True) -> dict:
    """Describe a media file: container duration, streams and (optionally) decoded frame count.

    imageio-ffmpeg ships no ffprobe, so this reads ffmpeg's own stream report; the frame count
    comes from actually decoding the video stream, which is exact.
    """
    path = Path(path)
    if not path.is_file():
        raise VestnikError("media file not found", path=path)
    args = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)]
    if count_frames:
        args += ["-map", "0:v:0?", "-f", "null", "-"]
    proc = subprocess.run(args, capture_output=True, text=True, errors="replace")
    report = proc.stderr
    input_part = report.split("Stream mapping:")[0]
    if "Invalid data found" in input_part or "Duration" not in input_part:
        raise VestnikError("not a readable media file", path=path)
    info: dict = {"duration": None, "streams": []}
    match = _DURATION_RE.search(input_part)
    if match:
        hours, minutes, seconds = match.groups()
        info["duration"] = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    for kind, codec, rest in _STREAM_RE.findall(input_part):
        stream: dict = {"type": kind.lower(), "codec": codec}
        if kind == "Video":
            size = re.search(r", (\d{2,5})x(\d{2,5})", rest)
            fps = re.search(r"([\d.]+) fps", rest)
            pix = re.search(r"\), (\w+)\(|, (yuv\w+|rgb\w+|bgr\w+)", rest)
            if size:
                stream["width"], stream["height"] = int(size.group(1)), int(size.group(2))
            if fps:
                stream["fps"] = float(fps.group(1))
            if pix:
                stream["pix_fmt"] = pix.group(1) or pix.group(2)
        else:
            rate = re.search(r"(\d+) Hz", rest)
            stream["sample_rate"] = int(rate.group(1)) if rate else None
            stream["channels"] = 1 if ", mono" in rest else 2 if ", stereo" in rest else None
        info["streams"].append(stream)
    if count_frames:
        frames = re.findall(r"frame=\s*(\d+)", report)
        info["video_frames"] = int(frames[-1]) if frames else 0
    return info


class FrameWriter:
    """Encode BGR uint8 frames to an H.264 mp4 (video only), atomically.

    Frames are piped to one ffmpeg process; the file appears at `path` only after a clean close.
    `threads` bounds the encoder so that parallel chunk jobs do not oversubscribe the CPU.
    """

    def __init__(
        self, path: str | os.PathLike, width: int, height: int, fps: float, threads: int = 1
    ):
        if width % 2 or height % 2:
            raise VestnikError(f"frame size {width}x{height} must be even for yuv420p", path=path)
        self.path = Path(path)
        self.width, self.height = width, height
        self.frames = 0
        self._atomic = atomic_write(self.path)
        self._tmp = self._atomic.__enter__()
        stream = ffmpeg.input(
            "pipe:", format="rawvideo", pix_fmt="bgr24", s=f"{width}x{height}", r=fps
        ).output(
            str(self._tmp),
            r=fps,
            threads=threads,
            movflags="+faststart",
            format="mp4",
            **VIDEO_CODEC_ARGS,
        )
        # ffmpeg's report goes to a file, not a pipe: nobody reads a pipe while frames are
        # written, and a full one (64 KiB, minutes of progress lines) would stall the encoder.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in __exit__)
        self._proc = subprocess.Popen(
            ffmpeg.compile(stream.overwrite_output(), cmd=ffmpeg_exe()),
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._stderr,
        )

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != (self.height, self.width, 3) or frame.dtype != "uint8":
            raise ValueError(f"expected a {self.height}x{self.width} BGR uint8 frame")
        self._proc.stdin.write(frame.tobytes())  # C order, whatever the array's strides
        self.frames += 1

    def _report(self) -> str:
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace")
        self._stderr.close()
        return text

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(BrokenPipeError):  # the encoder died; its report says why
            self._proc.stdin.close()
        code = self._proc.wait()
        stderr = self._report()
        if code != 0 and (exc_type is None or issubclass(exc_type, BrokenPipeError)):
            error = ffmpeg_error("encode the video", self.path, code, stderr, self._tmp)
            self._atomic.__exit__(VestnikError, error, None)
            raise error from exc
        self._atomic.__exit__(exc_type, exc, tb)


def concat_with_audio(
    videos: list[Path], audio: str | os.PathLike, out: str | os.PathLike
) -> None:
    """Join chunk videos without re-encoding and mux the whole speech once (AAC).

    Muxing the full speech instead of per-chunk audio means there is no audio seam. The inputs
    are checked first (`check_joinable`): a copy-join of unlike streams gives a broken file.
    """
    out = Path(out)
    check_joinable(videos, audio)
    listing_dir = tempfile.TemporaryDirectory(prefix="vestnik-concat-")  # not left in results/
    with atomic_write(out) as tmp, listing_dir as scratch:
        listing = Path(scratch) / "chunks.txt"
        listing.write_text("".join(_concat_line(v) for v in videos), encoding="utf-8")
        video = ffmpeg.input(str(listing), format="concat", safe=0)
        speech = ffmpeg.input(str(audio))
        stream = ffmpeg.output(
            video.video, speech.audio, str(tmp), vcodec="copy", acodec="aac",
            audio_bitrate="160k", movflags="+faststart", format="mp4",
        )
        _run(stream.overwrite_output(), "join the chunk videos", out, written=tmp)


def _concat_line(path: Path) -> str:
    quoted = Path(path).resolve().as_posix().replace("'", "'\\''")
    return f"file '{quoted}'\n"


def _video_format(path: Path) -> tuple[str, float, float]:
    """(frame size, codec, pixel format and rate as text; rate; container seconds) of a video."""
    info = probe(path, count_frames=False)
    video = next((s for s in info["streams"] if s["type"] == "video"), None)
    if video is None:
        raise VestnikError("chunk video has no video stream", path=path)
    fps = video.get("fps") or 0.0
    shape = (
        f"{video.get('width')}x{video.get('height')} {video['codec']} {video.get('pix_fmt')} "
        f"{fps:g} fps"
    )
    return shape, fps, info["duration"] or 0.0


def check_joinable(videos: list[Path], audio: str | os.PathLike) -> None:
    """Refuse chunk videos that cannot be joined without re-encoding, or that do not fit the
    speech: every chunk must exist and share one frame size, codec, pixel format and rate, and
    together last as long as the speech (within two frames and the containers' rounding)."""
    if not videos:
        raise VestnikError("no chunk videos to join")
    for video in videos:
        if not Path(video).is_file():
            raise VestnikError("chunk video not found", path=video)
    formats = [_video_format(Path(video)) for video in videos]
    first, fps, _ = formats[0]
    for video, (shape, _, _) in zip(videos[1:], formats[1:], strict=True):
        if shape != first:
            raise VestnikError(
                f"chunk video is {shape}, but {Path(videos[0]).name} is {first}; only chunks "
                "rendered alike join without re-encoding",
                path=video,
            )
    video_seconds = sum(seconds for _, _, seconds in formats)
    speech_seconds = audio_duration(audio)
    if speech_seconds is None:
        raise VestnikError("cannot tell how long the speech lasts", path=audio)
    tolerance = 2 / (fps or 25) + 0.01 * len(videos)
    if abs(speech_seconds - video_seconds) > tolerance:
        raise VestnikError(
            f"the speech lasts {speech_seconds:.2f} s but the {len(videos)} chunk video(s) "
            f"{video_seconds:.2f} s; join the chunks rendered from this speech",
            path=audio,
        )
