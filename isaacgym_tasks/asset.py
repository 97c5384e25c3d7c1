"""Facts about the BlindGrasping MJCF that every backend needs.

Read with ``xml.etree`` rather than MuJoCo so the Isaac Gym backend (which has
no MuJoCo) derives joint order, limits and box/table sizes from the very same
file; a renamed joint then fails loudly in both backends instead of silently
diverging.
"""

import os
import xml.etree.ElementTree as ET
from typing import Dict, List, NamedTuple, Tuple

ASSET_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", "blind_grasping.xml")

#: Actuated hand joints, in action/observation order.
HAND_JOINTS = (
    "base_x",
    "base_y",
    "base_z",
    "f0_prox",
    "f0_dist",
    "f1_prox",
    "f1_dist",
    "f2_prox",
    "f2_dist",
)
NUM_BASE_JOINTS = 3
FINGERTIP_SITES = ("tip0", "tip1", "tip2")
#: Open-hand pose the episode starts from (base offsets in m, finger angles in rad).
HAND_OPEN_POSE = (0.0, 0.0, 0.0, -0.4, 0.3, -0.4, 0.3, -0.4, 0.3)


class AssetInfo(NamedTuple):
    """Numbers parsed from the MJCF; metres, kilograms, radians."""

    joint_lower: Tuple[float, ...]
    joint_upper: Tuple[float, ...]
    palm_home: Tuple[float, float, float]
    table_top_z: float
    table_half_size: Tuple[float, float, float]
    box_half_size: Tuple[float, float, float]
    box_mass: float
    fingertip_radius: float
    timestep: float
    drive_kp: Tuple[float, ...]
    drive_kd: Tuple[float, ...]
    drive_effort: Tuple[float, ...]


def _floats(text: str) -> Tuple[float, ...]:
    return tuple(float(v) for v in text.split())


def read_asset_info(path: str = ASSET_PATH) -> AssetInfo:
    """Parse the constants the task math needs; raise ValueError on a missing element."""
    root = ET.parse(path).getroot()
    bodies: Dict[str, ET.Element] = {b.get("name", ""): b for b in root.iter("body")}
    joints: Dict[str, ET.Element] = {j.get("name", ""): j for j in root.iter("joint")}
    geoms: Dict[str, ET.Element] = {g.get("name", ""): g for g in root.iter("geom")}
    for name in HAND_JOINTS:
        if name not in joints:
            raise ValueError(
                "asset {!r} lacks joint {!r}; expected joints {}".format(path, name, HAND_JOINTS)
            )
    for name in ("palm", "table", "box"):
        if name not in bodies:
            raise ValueError("asset {!r} lacks body {!r}".format(path, name))
    ranges: List[Tuple[float, ...]] = [_floats(joints[n].get("range", "0 0")) for n in HAND_JOINTS]
    table = geoms["table"]
    table_half = _floats(table.get("size", ""))
    table_z = _floats(bodies["table"].get("pos", "0 0 0"))[2]
    box = geoms["box_geom"]
    option = root.find("option")
    timestep = float(option.get("timestep", "0.002")) if option is not None else 0.002
    palm = _floats(bodies["palm"].get("pos", "0 0 0"))
    kp, kd, effort = _drive_gains(root, [joints[n] for n in HAND_JOINTS])
    return AssetInfo(
        joint_lower=tuple(r[0] for r in ranges),
        joint_upper=tuple(r[1] for r in ranges),
        palm_home=(palm[0], palm[1], palm[2]),
        table_top_z=table_z + table_half[2],
        table_half_size=(table_half[0], table_half[1], table_half[2]),
        box_half_size=tuple(_floats(box.get("size", ""))),  # type: ignore[arg-type]
        box_mass=float(box.get("mass", "0.1")),
        fingertip_radius=_floats(geoms["tip0"].get("size", "0.01"))[0],
        timestep=timestep,
        drive_kp=kp,
        drive_kd=kd,
        drive_effort=effort,
    )


def _drive_gains(root: ET.Element, joints: List[ET.Element]) -> Tuple[Tuple[float, ...], ...]:
    """Position-servo gain, joint damping and force limit of each joint, from its default class.

    MuJoCo reads these from <position> and <joint>; Isaac Gym needs them as DOF
    drive properties, so they are parsed here once for both.
    """
    classes: Dict[str, ET.Element] = {d.get("class", ""): d for d in root.iter("default") if d.get("class")}
    kp: List[float] = []
    kd: List[float] = []
    effort: List[float] = []
    for joint in joints:
        cls = classes.get(joint.get("class", ""))
        if cls is None:
            raise ValueError(
                "joint {!r} needs a default class with <joint> and <position>".format(joint.get("name"))
            )
        position = cls.find("position")
        jdef = cls.find("joint")
        if position is None or jdef is None:
            raise ValueError("default class {!r} lacks <position> or <joint>".format(cls.get("class")))
        kp.append(float(position.get("kp", "1")))
        kd.append(float(jdef.get("damping", "0")))
        effort.append(_floats(position.get("forcerange", "-1e6 1e6"))[1])
    return tuple(kp), tuple(kd), tuple(effort)


def hand_only_mjcf(path: str = ASSET_PATH) -> str:
    """Return the MJCF text without the free box and the static table.

    Isaac Gym loads one MJCF file as one articulation; a free-floating box inside
    the hand's articulation is not something PhysX articulations model, so that
    backend loads this hand-only text and builds box and table with create_box.
    """
    tree = ET.parse(path)
    root = tree.getroot()
    world = root.find("worldbody")
    if world is None:
        raise ValueError("asset {!r} has no <worldbody>".format(path))
    for body in list(world.findall("body")):
        if body.get("name") in ("box", "table"):
            world.remove(body)
    for tag in ("sensor",):
        for elem in list(root.findall(tag)):
            root.remove(elem)
    return ET.tostring(root, encoding="unicode")
