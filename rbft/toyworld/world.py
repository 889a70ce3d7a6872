"""A procedural video world with exact ground truth: shapes that move, bounce, turn back, speed up,
touch or pass close to each other, grow, shrink, appear and disappear, over noisy backgrounds
with an occluder. Every clip carries its event log (what, where, when), and captions are written
from the log, in temporal order, with varied phrasing.

This is the data half of the toy-world VLM (issue 7): a world where what a model says about a
clip can be checked against what happened.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

SHAPES = ("circle", "square", "triangle")
COLORS = {"red": (40, 40, 220), "green": (60, 190, 60), "blue": (220, 110, 40), "yellow": (40, 220, 230),
          "purple": (200, 60, 170), "white": (235, 235, 235)}   # BGR
BEHAVIOURS = ("moves", "bounces", "turns_back", "speeds_up", "still", "grows", "shrinks")


@dataclass
class Thing:
    shape: str
    color: str
    size: str                 # small / large
    x: float
    y: float
    vx: float
    vy: float
    behaviour: str
    appear: int = 0           # first frame it is visible
    vanish: int = 10 ** 9     # first frame it is gone
    turn_at: int = -1         # turns_back: frame it reverses
    angle_speed: float = 0.0  # degrees per frame (squares and triangles may rotate)

    @property
    def name(self) -> str:
        return f"the {self.size} {self.color} {self.shape}"

    def radius(self, scale: float) -> float:
        return (0.09 if self.size == "small" else 0.14) * scale


@dataclass
class Clip:
    frames: np.ndarray                    # (T, H, W, 3) uint8 RGB
    events: list[dict] = field(default_factory=list)
    things: list[dict] = field(default_factory=list)
    fps: float = 8.0
    tracks: dict = field(default_factory=dict)  # name -> per frame (x, y, radius, visible), canvas units
    angles: dict = field(default_factory=dict)  # name -> per frame rotation in degrees
    labels: np.ndarray | None = None      # (T, H, W) uint8: index + 1 of the thing seen at each pixel, 0 none


def _direction(vx: float, vy: float) -> str:
    if abs(vx) >= abs(vy):
        return "right" if vx > 0 else "left"
    return "down" if vy > 0 else "up"


def _draw(img, thing: Thing, cx: float, cy: float, r: float, angle: float, color=None,
          line=cv2.LINE_AA) -> None:
    color = COLORS[thing.color] if color is None else color
    c = (int(round(cx)), int(round(cy)))
    if thing.shape == "circle":
        cv2.circle(img, c, int(round(r)), color, -1, line)
        return
    n = 4 if thing.shape == "square" else 3
    start = math.radians(angle + (45 if n == 4 else -90))
    pts = np.array([[cx + r * math.cos(start + 2 * math.pi * k / n), cy + r * math.sin(start + 2 * math.pi * k / n)]
                    for k in range(n)], np.int32)
    cv2.fillPoly(img, [pts], color, line)


def _random_things(rng: np.random.Generator, n: int, n_frames: int) -> list[Thing]:
    things, used = [], set()
    for _ in range(n):
        while True:
            shape, color = SHAPES[rng.integers(len(SHAPES))], list(COLORS)[rng.integers(len(COLORS))]
            if (shape, color) not in used:
                used.add((shape, color))
                break
        behaviour = BEHAVIOURS[rng.integers(len(BEHAVIOURS))]
        speed = float(rng.choice([0.012, 0.025]))  # canvas widths per frame: slow / fast
        horizontal = bool(rng.integers(2))
        sign = 1 if rng.integers(2) else -1
        vx, vy = (sign * speed, 0.0) if horizontal else (0.0, sign * speed)
        if behaviour in ("still", "grows", "shrinks"):
            vx = vy = 0.0
        t = Thing(shape, color, "small" if rng.integers(2) else "large",
                  x=float(rng.uniform(0.2, 0.8)), y=float(rng.uniform(0.2, 0.8)), vx=vx, vy=vy,
                  behaviour=behaviour)
        if behaviour == "bounces":  # start near the wall it is heading for
            if vx:
                t.x = 0.25 if vx < 0 else 0.75
            else:
                t.y = 0.25 if vy < 0 else 0.75
            t.vx, t.vy = t.vx * 1.6, t.vy * 1.6
        if behaviour == "turns_back":
            t.turn_at = int(rng.integers(n_frames // 3, 2 * n_frames // 3))
        if shape != "circle" and rng.random() < 0.3:
            t.angle_speed = float(rng.choice([-12.0, 12.0]))
        if rng.random() < 0.2:
            t.appear = int(rng.integers(2, n_frames // 2))
        elif rng.random() < 0.2:
            t.vanish = int(rng.integers(n_frames // 2, n_frames - 2))
        for _ in range(30):  # no two things start on top of each other
            if all(math.hypot(t.x - o.x, t.y - o.y) > (t.radius(1) + o.radius(1)) * 1.7 for o in things):
                break
            t.x, t.y = float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.2, 0.8))
        things.append(t)
    return things


def render(seed: int, size: int = 128, n_frames: int = 16, fps: float = 8.0, max_things: int = 3,
           labels: bool = False) -> Clip:
    """One clip and its exact event log; the same seed gives the same clip. With labels, also the
    map of which thing each pixel shows (what the vision tower's pretraining learns to see)."""
    rng = np.random.default_rng(seed)
    things = _random_things(rng, int(rng.integers(1, max_things + 1)), n_frames)
    background = int(rng.integers(15, 70))
    occluder = None
    if rng.random() < 0.3:  # a static grey bar that hides what passes behind it
        x0 = int(rng.integers(size // 4, size // 2))
        occluder = (x0, 0, x0 + size // 10, size)
    events: list[dict] = []

    def log(t: int, thing: Thing, what: str, **extra) -> None:
        events.append({"t": t, "time_s": round(t / fps, 2), "object": thing.name, "event": what, **extra})

    state = [{"x": th.x, "y": th.y, "vx": th.vx, "vy": th.vy, "scale": 1.0, "angle": 0.0} for th in things]
    near = {}  # pair -> when they first came close, and whether they touched
    tracks: dict[str, list] = {}
    angles: dict[str, list] = {}
    frames, label_maps = [], []
    for t in range(n_frames):
        img = np.full((size, size, 3), background, np.uint8)
        img = cv2.add(img, rng.integers(0, 14, img.shape, dtype=np.uint8))
        for th, s in zip(things, state):
            if t == 0 and th.appear == 0 and th.vanish > 0:
                what = "stays still" if th.behaviour in ("still", "grows", "shrinks") else \
                       f"moves {_direction(s['vx'], s['vy'])}"
                log(0, th, "is there at the start", detail=what)
            if t == th.appear and t > 0:
                log(t, th, "appears")
            if t == th.vanish:
                log(t, th, "disappears")
            if t > 0:  # advance
                if th.behaviour == "speeds_up" and t == n_frames // 2:
                    s["vx"], s["vy"] = s["vx"] * 2.2, s["vy"] * 2.2
                    log(t, th, "speeds up")
                if th.behaviour == "turns_back" and t == th.turn_at:
                    s["vx"], s["vy"] = -s["vx"], -s["vy"]
                    log(t, th, "turns back", detail=f"now moves {_direction(s['vx'], s['vy'])}")
                s["x"] += s["vx"]
                s["y"] += s["vy"]
                r = th.radius(1.0) * s["scale"]
                for axis, low, high, wall_low, wall_high in (("x", r, 1 - r, "left", "right"),
                                                            ("y", r, 1 - r, "top", "bottom")):
                    v = "v" + axis
                    if s[axis] < low or s[axis] > high:
                        if th.behaviour == "bounces":
                            s[axis] = min(max(s[axis], low), high)
                            s[v] = -s[v]
                            log(t, th, "bounces", wall=wall_low if s[v] > 0 else wall_high)
                        else:
                            s[axis] = min(max(s[axis], low), high)
                            if s[v]:
                                log(t, th, "stops at the edge", wall=wall_low if s[v] < 0 else wall_high)
                            s[v] = 0.0
                if th.behaviour == "grows":
                    s["scale"] = min(2.0, s["scale"] * 1.06)
                if th.behaviour == "shrinks":
                    s["scale"] = max(0.4, s["scale"] / 1.06)
                s["angle"] += th.angle_speed
        visible = [(th, s) for th, s in zip(things, state) if th.appear <= t < th.vanish]
        for i, (a, sa) in enumerate(visible):  # contacts between pairs
            for b, sb in visible[i + 1:]:
                d = math.hypot(sa["x"] - sb["x"], sa["y"] - sb["y"])
                reach = a.radius(1.0) * sa["scale"] + b.radius(1.0) * sb["scale"]
                key = (a.name, b.name)
                touching = d <= reach
                if touching and not near.get(key, {}).get("touched"):
                    log(t, a, "touches", other=b.name)
                    near.setdefault(key, {})["touched"] = True
                elif not touching and d <= reach * 1.6 and not near.get(key):
                    near[key] = {"close_at": t}
        for th, s in zip(things, state):
            tracks.setdefault(th.name, []).append((s["x"], s["y"], th.radius(1.0) * s["scale"],
                                                   th.appear <= t < th.vanish))
            angles.setdefault(th.name, []).append(s["angle"])
        for th, s in visible:
            _draw(img, th, s["x"] * size, s["y"] * size, th.radius(size) * s["scale"], s["angle"])
        if occluder:
            cv2.rectangle(img, occluder[:2], occluder[2:], (120, 120, 120), -1)
        if labels:
            label = np.zeros((size, size), np.uint8)
            for th, s in visible:
                _draw(label, th, s["x"] * size, s["y"] * size, th.radius(size) * s["scale"], s["angle"],
                      color=things.index(th) + 1, line=cv2.LINE_8)
            if occluder:
                cv2.rectangle(label, occluder[:2], occluder[2:], 0, -1)
            label_maps.append(label)
        frames.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    for (a, b), info in near.items():
        if "close_at" in info and not info.get("touched"):
            thing_a = next(th for th in things if th.name == a)
            log(info["close_at"], thing_a, "passes close to", other=b)
    for th in things:
        first = max(th.appear, 1)
        if th.behaviour in ("grows", "shrinks") and first < min(th.vanish, n_frames):
            log(first, th, th.behaviour, detail="keeps getting " + ("bigger" if th.behaviour == "grows" else "smaller"))
        if th.angle_speed and first < min(th.vanish, n_frames):
            log(first, th, "rotates")
    order = {"is there at the start": 0, "appears": 0, "disappears": 2}
    events.sort(key=lambda e: (e["t"], order.get(e["event"], 1), e["object"], e["event"]))
    return Clip(np.stack(frames), events, [asdict(th) for th in things], fps, tracks, angles,
                np.stack(label_maps) if labels else None)


# ---- captions ---------------------------------------------------------------------------------

def facts(events: list[dict]) -> list[tuple[str, str]]:
    """(object 'color shape', event kind) in log order, with the start detail as its own kind."""
    out = []
    for e in events:
        _, _, color, shape = e["object"].split(" ")
        kind = e["detail"] if e["event"] == "is there at the start" else e["event"]
        out.append((f"{color} {shape}", kind))
    return out


OPENERS = ["At first", "In the beginning", "At the start", "First"]
LINKS = ["Then", "After that", "Next", "Later", "A moment later"]


def _sentence(e: dict, rng: np.random.Generator) -> str:
    o, what = e["object"], e["event"]
    if what == "is there at the start":
        return f"{o} {e['detail']}" if e["detail"] != "stays still" else f"{o} stays still"
    if what == "bounces":
        return rng.choice([f"{o} bounces off the {e['wall']} wall", f"{o} hits the {e['wall']} edge and comes back"])
    if what == "turns back":
        return rng.choice([f"{o} turns back", f"{o} reverses and {e['detail']}"])
    if what == "speeds up":
        return rng.choice([f"{o} speeds up", f"{o} starts moving faster"])
    if what == "touches":
        return rng.choice([f"{o} touches {e['other']}", f"{o} bumps into {e['other']}"])
    if what == "passes close to":
        return rng.choice([f"{o} passes close to {e['other']}", f"{o} comes near {e['other']} without touching it"])
    if what == "stops at the edge":
        return f"{o} reaches the {e['wall']} edge and stops"
    if what in ("appears", "disappears", "rotates"):
        return f"{o} {what}"
    if what in ("grows", "shrinks"):
        return f"{o} {e['detail']}"
    return f"{o} {what}"


def caption(clip: Clip, seed: int = 0) -> str:
    """A description of the clip in temporal order, from its event log (never a class name)."""
    return describe(clip.events, seed)


def describe(events: list[dict], seed: int = 0) -> str:
    """Events in temporal order as plain sentences (what `caption` writes for a clip's log)."""
    rng = np.random.default_rng(seed)
    by_time: dict[int, list[str]] = {}
    for e in events:
        by_time.setdefault(e["t"], []).append(_sentence(e, rng))
    parts = []
    for i, t in enumerate(sorted(by_time)):
        clause = " and ".join(by_time[t])
        lead = rng.choice(OPENERS) if i == 0 else rng.choice(LINKS)
        parts.append(f"{lead}, {clause}.")
    return " ".join(parts) if parts else "Nothing moves."
