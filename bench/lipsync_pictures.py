"""Pictures of the procedural talking head: a contact sheet of mouth crops per viseme, the
same crops as an independent dlib fit reads them, and a short clip of a spoken sentence.

Usage (repo root):
    .venv/bin/python bench/lipsync_pictures.py [--out docs/img]

Writes visemes.png (mouth crops, 2x, one per viseme, with the fitted inner-lip gap and mouth
width in face widths under each) and talking_head.mp4 (the lecture's first sentence on the
default avatar, lower face and eyes in view).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from vestnik import media  # noqa: E402
from vestnik.avatar import load_avatar  # noqa: E402
from vestnik.config import engine_settings  # noqa: E402
from vestnik.lipsync import quality  # noqa: E402
from vestnik.lipsync.chunk import ChunkJob  # noqa: E402
from vestnik.lipsync.face import avatar_faces  # noqa: E402
from vestnik.lipsync.procedural import Pose, ProceduralEngine  # noqa: E402
from vestnik.tts import espeak  # noqa: E402


def speak(text: str):
    return espeak.synthesize(text, **engine_settings("tts", "espeak", {}))


VISEMES = [
    ("rest", Pose()),
    ("open (a)", Pose(open=1.0)),
    ("half (e)", Pose(open=0.5, spread=0.5)),
    ("round (o, u)", Pose(open=0.45, round=1.0)),
    ("spread (i, e)", Pose(open=0.35, spread=1.0)),
    ("closed (m, p, b)", Pose(press=1.0)),
    ("labiodental (f, v)", Pose(open=0.1, labiodental=1.0)),
    ("blink + brows", Pose(blink=1.0, brow=1.0)),
]


def contact_sheet(out: Path) -> None:
    avatar = load_avatar(ROOT / "resources" / "avatar.png")
    (face,) = avatar_faces(avatar, "dlib68")
    engine = ProceduralEngine({})
    frames = [engine.draw(avatar.frame(0), face, pose) for _, pose in VISEMES]
    points = quality.fit_frames(frames)
    width = np.linalg.norm(points[:, 16] - points[:, 0], axis=1)
    gap = np.linalg.norm(points[:, 62] - points[:, 66], axis=1) / width
    mouth = np.linalg.norm(points[:, 48] - points[:, 54], axis=1) / width
    x, y, w, h = face.box
    tiles = []
    for (name, pose), frame, g, m in zip(VISEMES, frames, gap, mouth, strict=True):
        top = y if pose.blink else y + h // 2
        crop = frame[top : top + int(0.75 * h), x : x + w]
        tile = cv2.resize(crop, (2 * w, int(1.5 * h)), interpolation=cv2.INTER_CUBIC)
        label = np.full((44, tile.shape[1], 3), 255, dtype=np.uint8)
        cv2.putText(label, name, (4, 16),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)  # fmt: skip
        cv2.putText(label, f"gap {g:.3f} width {m:.3f}", (4, 36),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.42, (60, 60, 60), 1, cv2.LINE_AA)  # fmt: skip
        tiles.append(np.vstack([tile, label]))
    rows = [np.hstack(tiles[i : i + 4]) for i in range(0, len(tiles), 4)]
    cv2.imwrite(str(out / "visemes.png"), np.vstack(rows))


def clip(out: Path) -> None:
    avatar = load_avatar(ROOT / "resources" / "avatar.png")
    text = (ROOT / "resources" / "texts" / "lecture.txt").read_text(encoding="utf-8")
    speech = speak(text.split(".")[0] + ". " + text.split(".")[1] + ".")
    fps = 25
    n = int(speech.duration * fps) + 10
    audio = np.concatenate([speech.samples, np.zeros(speech.sample_rate, dtype=np.float32)])
    chunk = ChunkJob(avatar, audio, speech.sample_rate, 0.0, 0, n, fps, speech.events)
    (face,) = avatar_faces(avatar, "dlib68")
    x, y, w, h = face.box
    x0, y0 = max(0, x - w // 2), max(0, y - h // 3)
    side = 2 * w
    silent = out / "talking_head_video.mp4"
    with media.FrameWriter(silent, side, side, fps, 1) as writer:
        for frame in ProceduralEngine({}, job="clip").render(chunk):
            writer.write(np.ascontiguousarray(frame[y0 : y0 + side, x0 : x0 + side]))
    wav = out / "talking_head.wav"
    media.write_wav(wav, audio, speech.sample_rate)
    media.concat_with_audio([silent], str(wav), str(out / "talking_head.mp4"))
    silent.unlink()
    wav.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "img"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    contact_sheet(out)
    clip(out)
    print(f"wrote {out / 'visemes.png'} and {out / 'talking_head.mp4'}")


if __name__ == "__main__":
    main()
