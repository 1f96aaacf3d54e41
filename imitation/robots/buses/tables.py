"""Control tables of the supported servo models, as data: one ``ModelTable`` per model in ``MODELS``.

Addresses, sizes and encodings follow the vendors' manuals (ROBOTIS X-series e-Manual, Feetech
STS3215 memory table). Signed registers are either two's complement (Dynamixel) or
sign-magnitude with the sign in bit ``sign`` (Feetech: bit 15 for positions and speeds, bit 11
for ``Homing_Offset``, bit 10 for ``Present_Load``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


def to_twos(value: int, size: int) -> int:
    """Two's complement of ``value`` in ``size`` bytes, e.g. ``to_twos(-1, 2) == 0xFFFF``."""
    return value & ((1 << (8 * size)) - 1)


def from_twos(raw: int, size: int) -> int:
    """Inverse of :func:`to_twos`: ``from_twos(0xFFFF, 2) == -1``."""
    bits = 8 * size
    return raw - (1 << bits) if raw & (1 << (bits - 1)) else raw


def to_sign_magnitude(value: int, sign_bit: int) -> int:
    """Sign-magnitude with the sign in bit ``sign_bit``: ``to_sign_magnitude(-5, 15) == 0x8005``."""
    if abs(value) >= 1 << sign_bit:
        raise ValueError(f"{value} does not fit a sign-magnitude value with sign bit {sign_bit}")
    return (-value | (1 << sign_bit)) if value < 0 else value


def from_sign_magnitude(raw: int, sign_bit: int) -> int:
    """Inverse of :func:`to_sign_magnitude`; bits above the sign bit are ignored."""
    magnitude = raw & ((1 << sign_bit) - 1)
    return -magnitude if raw & (1 << sign_bit) else magnitude


@dataclass(frozen=True)
class Register:
    """One entry of a control table. ``sign``: None (unsigned), "twos" or the sign-magnitude sign bit."""

    name: str
    address: int
    size: int  # bytes: 1, 2 or 4
    area: Literal["EEPROM", "RAM"]
    access: Literal["R", "RW"]
    sign: None | Literal["twos"] | int = None
    default: int = 0

    @property
    def value_range(self) -> tuple[int, int]:
        """Smallest and largest value the register can hold (decoded)."""
        bits = 8 * self.size
        if self.sign is None:
            return 0, (1 << bits) - 1
        if self.sign == "twos":
            return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        return -((1 << self.sign) - 1), (1 << self.sign) - 1

    def to_raw(self, value: int) -> int:
        """The unsigned number stored for ``value``; ValueError when it is out of :attr:`value_range`."""
        lo, hi = self.value_range
        if not lo <= value <= hi:
            raise ValueError(f"{self.name}={value} is out of range [{lo}, {hi}]")
        if self.sign is None:
            return value
        if self.sign == "twos":
            return to_twos(value, self.size)
        return to_sign_magnitude(value, self.sign)

    def from_raw(self, raw: int) -> int:
        """The value of the stored unsigned number ``raw``."""
        if self.sign is None:
            return raw
        if self.sign == "twos":
            return from_twos(raw, self.size)
        return from_sign_magnitude(raw, self.sign)


@dataclass(frozen=True)
class ModelTable:
    """A servo model: its protocol, model number and control table."""

    name: str
    protocol: Literal["dynamixel", "feetech"]
    model_number: int
    registers: dict[str, Register]
    ticks_per_turn: int = 4096

    def reg(self, name: str) -> Register:
        """The register called ``name``; ValueError naming the model and its registers if it has none."""
        try:
            return self.registers[name]
        except KeyError:
            raise ValueError(
                f"model {self.name} has no register {name!r}; its registers: {', '.join(self.registers)}"
            ) from None


def _table(rows: list[tuple]) -> dict[str, Register]:
    regs = {}
    for name, address, size, area, access, *rest in rows:
        sign = rest[0] if rest else None
        default = rest[1] if len(rest) > 1 else 0
        regs[name] = Register(name, address, size, area, access, sign, default)
    return regs


E, R = "EEPROM", "RAM"

# (name, address, size, area, access, sign, default). The Dynamixel X-series share one layout.
_X_COMMON = [
    ("Model_Number", 0, 2, E, "R"),
    ("Model_Information", 2, 4, E, "R"),
    ("Firmware_Version", 6, 1, E, "R", None, 48),
    ("ID", 7, 1, E, "RW", None, 1),
    ("Baud_Rate", 8, 1, E, "RW", None, 1),  # 1: 57600 out of the box
    ("Return_Delay_Time", 9, 1, E, "RW", None, 250),  # 2 us units
    ("Drive_Mode", 10, 1, E, "RW"),
    ("Operating_Mode", 11, 1, E, "RW", None, 3),
    ("Secondary_ID", 12, 1, E, "RW", None, 255),
    ("Protocol_Type", 13, 1, E, "RW", None, 2),
    ("Homing_Offset", 20, 4, E, "RW", "twos"),
    ("Moving_Threshold", 24, 4, E, "RW", None, 10),
    ("Temperature_Limit", 31, 1, E, "RW", None, 80),
    ("Max_Voltage_Limit", 32, 2, E, "RW", None, 140),
    ("Min_Voltage_Limit", 34, 2, E, "RW", None, 60),
    ("PWM_Limit", 36, 2, E, "RW", None, 885),
    ("Velocity_Limit", 44, 4, E, "RW", None, 265),
    ("Max_Position_Limit", 48, 4, E, "RW", None, 4095),
    ("Min_Position_Limit", 52, 4, E, "RW", None, 0),
    ("Shutdown", 63, 1, E, "RW", None, 52),
    ("Torque_Enable", 64, 1, R, "RW"),
    ("LED", 65, 1, R, "RW"),
    ("Status_Return_Level", 68, 1, R, "RW", None, 2),
    ("Registered_Instruction", 69, 1, R, "R"),
    ("Hardware_Error_Status", 70, 1, R, "R"),
    ("Velocity_I_Gain", 76, 2, R, "RW", None, 1000),
    ("Velocity_P_Gain", 78, 2, R, "RW", None, 100),
    ("Position_D_Gain", 80, 2, R, "RW"),
    ("Position_I_Gain", 82, 2, R, "RW"),
    ("Position_P_Gain", 84, 2, R, "RW", None, 800),
    ("Bus_Watchdog", 98, 1, R, "RW"),  # 20 ms units, 0 off
    ("Goal_PWM", 100, 2, R, "RW", "twos", 885),
    ("Goal_Velocity", 104, 4, R, "RW", "twos"),
    ("Profile_Acceleration", 108, 4, R, "RW"),
    ("Profile_Velocity", 112, 4, R, "RW"),
    ("Goal_Position", 116, 4, R, "RW", "twos", 2048),
    ("Realtime_Tick", 120, 2, R, "R"),
    ("Moving", 122, 1, R, "R"),
    ("Moving_Status", 123, 1, R, "R"),
    ("Present_PWM", 124, 2, R, "R", "twos"),
    ("Present_Velocity", 128, 4, R, "R", "twos"),  # 0.229 rpm units
    ("Present_Position", 132, 4, R, "R", "twos", 2048),
    ("Velocity_Trajectory", 136, 4, R, "R", "twos"),
    ("Position_Trajectory", 140, 4, R, "R", "twos"),
    ("Present_Input_Voltage", 144, 2, R, "R", None, 120),
    ("Present_Temperature", 146, 1, R, "R", None, 30),
]
# Models with current sensing (XL330, XM430, XM540); the XL430 and XC430 have none: a load estimate at 126.
_X_CURRENT = [
    ("Current_Limit", 38, 2, E, "RW", None, 1750),
    ("Goal_Current", 102, 2, R, "RW", "twos", 1750),
    ("Present_Current", 126, 2, R, "R", "twos"),
]
_XL430_LOAD = [("Present_Load", 126, 2, R, "R", "twos")]


def _dynamixel(name: str, number: int, extra: list[tuple], current_limit: int | None = None) -> ModelTable:
    rows = sorted(_X_COMMON + extra, key=lambda r: r[1])
    regs = _table(rows)
    regs["Model_Number"] = Register("Model_Number", 0, 2, E, "R", None, number)
    if current_limit is not None:
        for key in ("Current_Limit", "Goal_Current"):
            r = regs[key]
            regs[key] = Register(r.name, r.address, r.size, r.area, r.access, r.sign, current_limit)
    return ModelTable(name, "dynamixel", number, regs)


_STS3215 = _table(
    [
        ("Firmware_Major_Version", 0, 1, E, "R", None, 3),
        ("Firmware_Minor_Version", 1, 1, E, "R", None, 10),
        ("Model_Number", 3, 2, E, "R", None, 777),
        ("ID", 5, 1, E, "RW", None, 1),
        ("Baud_Rate", 6, 1, E, "RW"),  # 0: 1 Mbps
        ("Return_Delay_Time", 7, 1, E, "RW", None, 250),  # 2 us units
        ("Response_Status_Level", 8, 1, E, "RW", None, 1),
        ("Min_Position_Limit", 9, 2, E, "RW", None, 0),
        ("Max_Position_Limit", 11, 2, E, "RW", None, 4095),
        ("Max_Temperature_Limit", 13, 1, E, "RW", None, 70),
        ("Max_Voltage_Limit", 14, 1, E, "RW", None, 80),
        ("Min_Voltage_Limit", 15, 1, E, "RW", None, 40),
        ("Max_Torque_Limit", 16, 2, E, "RW", None, 1000),
        ("Phase", 18, 1, E, "RW", None, 12),
        ("Unloading_Condition", 19, 1, E, "RW", None, 44),
        ("LED_Alarm_Condition", 20, 1, E, "RW", None, 47),
        ("P_Coefficient", 21, 1, E, "RW", None, 32),
        ("D_Coefficient", 22, 1, E, "RW", None, 32),
        ("I_Coefficient", 23, 1, E, "RW", None, 0),
        ("Minimum_Startup_Force", 24, 2, E, "RW", None, 16),
        ("CW_Dead_Zone", 26, 1, E, "RW", None, 1),
        ("CCW_Dead_Zone", 27, 1, E, "RW", None, 1),
        ("Protection_Current", 28, 2, E, "RW", None, 500),
        ("Angular_Resolution", 30, 1, E, "RW", None, 1),
        ("Homing_Offset", 31, 2, E, "RW", 11),
        ("Operating_Mode", 33, 1, E, "RW"),  # 0 position, 1 speed, 2 PWM, 3 step
        ("Protective_Torque", 34, 1, E, "RW", None, 20),
        ("Protection_Time", 35, 1, E, "RW", None, 200),
        ("Overload_Torque", 36, 1, E, "RW", None, 80),
        ("Velocity_P_Coefficient", 37, 1, E, "RW", None, 10),
        ("Over_Current_Protection_Time", 38, 1, E, "RW", None, 200),
        ("Velocity_I_Coefficient", 39, 1, E, "RW", None, 200),
        ("Torque_Enable", 40, 1, R, "RW"),
        ("Acceleration", 41, 1, R, "RW"),
        ("Goal_Position", 42, 2, R, "RW", 15, 2048),
        ("Goal_Time", 44, 2, R, "RW"),
        ("Goal_Speed", 46, 2, R, "RW", 15),
        ("Torque_Limit", 48, 2, R, "RW", None, 1000),
        ("Lock", 55, 1, R, "RW", None, 1),
        ("Present_Position", 56, 2, R, "R", 15, 2048),
        ("Present_Velocity", 58, 2, R, "R", 15),  # steps/s
        ("Present_Load", 60, 2, R, "R", 10),
        ("Present_Voltage", 62, 1, R, "R", None, 120),
        ("Present_Temperature", 63, 1, R, "R", None, 30),
        ("Status", 65, 1, R, "R"),
        ("Moving", 66, 1, R, "R"),
        ("Present_Current", 69, 2, R, "R"),
    ]
)

MODELS: dict[str, ModelTable] = {
    "sts3215": ModelTable("sts3215", "feetech", 777, _STS3215),
    "xl330-m077": _dynamixel("xl330-m077", 1190, _X_CURRENT, current_limit=1750),
    "xl330-m288": _dynamixel("xl330-m288", 1200, _X_CURRENT, current_limit=1750),
    "xl430-w250": _dynamixel("xl430-w250", 1060, _XL430_LOAD),
    # XC430-W150: the XL430's control table (no current sensing; the ALOHA leader's gripper handle).
    "xc430-w150": _dynamixel("xc430-w150", 1070, _XL430_LOAD),
    "xm430-w350": _dynamixel("xm430-w350", 1020, _X_CURRENT, current_limit=1193),
    "xm540-w270": _dynamixel("xm540-w270", 1120, _X_CURRENT, current_limit=2047),
}
