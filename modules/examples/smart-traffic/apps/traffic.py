"""The city the sensors measure: data/generate.py's traffic model, one reading at a time.

generate.py draws a whole table with numpy; the sensors need the same model for one
intersection and one moment, deterministically, with nothing but the standard library (the apps
directory is uploaded alone, without data/). The constants below are generate.py's, copied;
tests/pipeline/test_traffic.py checks that they and the rule still agree with it.

Three things come from here:
  - `reading(seed, intersection, seq, ...)`: what a sensor reports in its seq-th message;
  - `queue_length(load)`: the ground truth a sensor attaches (vehicles waiting: 20 per unit load);
  - `level_of_queue(queue)`: how the batch job labels congestion from observed queues, exactly
    generate.py's thresholds on load (low < 0.45 <= medium < 0.80 <= high).
"""

from __future__ import annotations

import math
import random

WEATHER = ["clear", "rain", "snow", "fog"]
LEVELS = ["low", "medium", "high"]
# capacity (vehicles/min), peak share of capacity, pedestrians at the peak, capacity a crowd costs
INTERSECTIONS = {
    "i-01": (80.0, 0.90, 35.0, 0.45),
    "i-02": (55.0, 0.95, 22.0, 0.30),
    "i-03": (35.0, 0.85, 10.0, 0.05),
    "i-04": (90.0, 0.85, 3.0, 0.00),
    "i-05": (20.0, 1.00, 20.0, 0.50),
    "i-06": (60.0, 0.80, 8.0, 0.05),
    "i-07": (30.0, 0.90, 25.0, 0.45),
    "i-08": (45.0, 0.85, 5.0, 0.00),
}
NAMES = list(INTERSECTIONS)
SCHOOL, NIGHTLIFE, ROAD_WORKS = "i-07", ("i-01", "i-02"), "i-04"
WEATHER_MIX = [0.50, 0.25, 0.10, 0.15]
CAPACITY_FACTOR = {"clear": 1.00, "rain": 0.85, "snow": 0.70, "fog": 0.90}
EXPOSED_FACTOR = {"clear": 1.00, "rain": 0.75, "snow": 0.40, "fog": 0.50}
EXPOSED = ("i-03", "i-06", "i-08")
DEMAND_FACTOR = {"clear": 1.00, "rain": 1.08, "snow": 0.85, "fog": 0.95}
TEMP_OFFSET = {"clear": 4.0, "rain": 0.0, "snow": -11.0, "fog": -2.0}
LOW_MEDIUM, MEDIUM_HIGH = 0.45, 0.80
CROWD = 0.5
RUSH_FACTOR, SCHOOL_FACTOR, WORKS_FACTOR, ICY_FACTOR = 0.80, 0.40, 0.25, 0.80
VEHICLE_NOISE, PEDESTRIAN_NOISE, LOAD_NOISE = 0.15, 0.45, 0.06
BASE_TEMP = 12.0

# What the stream adds to generate.py's one-row-per-interval table.
QUEUE_PER_LOAD = 20.0  # vehicles waiting per unit of load (vehicles / effective capacity)
QUEUE_LOW_MEDIUM, QUEUE_MEDIUM_HIGH = 9.0, 16.0  # LOW_MEDIUM and MEDIUM_HIGH x QUEUE_PER_LOAD
SLOT_MIN = 15  # generate.py's interval; the batch job aggregates per slot
WEATHER_BLOCK_MIN = 180  # weather (and the day's temperature noise) holds for 3 hours, not 15 minutes
READING_VEHICLE_JITTER, READING_PEDESTRIAN_JITTER, READING_TEMP_JITTER = 0.05, 0.10, 0.6
DEAD_SENSOR = 0.01  # share of readings without a temperature, as in generate.py
WEEK_MIN = 7 * 24 * 60


def demand_profile(hour: int, weekday: int) -> float:
    """Share of the peak traffic at this hour (generate.py's demand_profile, for one value)."""
    h = hour + 0.5
    if weekday >= 5:
        return 0.18 + 0.55 * math.exp(-0.5 * ((h - 14.0) / 3.5) ** 2)
    morning = math.exp(-0.5 * ((h - 8.0) / 1.2) ** 2)
    evening = math.exp(-0.5 * ((h - 17.5) / 1.5) ** 2)
    day = math.exp(-0.5 * ((h - 13.0) / 4.0) ** 2)
    return 0.20 + 0.80 * max(morning, 1.05 * evening, 0.55 * day)


def effective_capacity(intersection: str, hour: int, weekday: int, weather: str, temperature_c: float | None,
                       pedestrians_per_min: float) -> float:
    """Vehicles/min the intersection clears under these conditions (generate.py's rule)."""
    capacity, _, ped_peak, ped_cost = INTERSECTIONS[intersection]
    factor = EXPOSED_FACTOR if intersection in EXPOSED else CAPACITY_FACTOR
    effective = capacity * factor[weather]
    if pedestrians_per_min > CROWD * ped_peak:
        effective *= 1.0 - ped_cost
    if weekday < 5 and (7 <= hour <= 9 or 16 <= hour <= 18):
        effective *= RUSH_FACTOR
    if intersection == SCHOOL and weekday < 5 and hour in (7, 8, 14, 15):
        effective *= SCHOOL_FACTOR
    if intersection == ROAD_WORKS and (hour >= 21 or hour < 6):
        effective *= WORKS_FACTOR
    # A dead temperature sensor (None/NaN) cannot say "icy": the comparison is False, as in numpy.
    if weather in ("rain", "snow") and temperature_c is not None and temperature_c < 1.0:
        effective *= ICY_FACTOR
    return effective


def level(load: float) -> str:
    """generate.py's cut: np.digitize(load, [0.45, 0.80]) over LEVELS."""
    return "low" if load < LOW_MEDIUM else "medium" if load < MEDIUM_HIGH else "high"


def queue_length(load: float) -> float:
    """Vehicles waiting, to 0.1, such that level_of_queue(queue_length(x)) == level(x) for every
    load x. Rounded down: the thresholds fall on whole tenths (9.0 and 16.0), so flooring keeps a
    load on its side of them, except that float arithmetic can move a load within an ulp of a
    threshold across it; that case is put back on the load's side."""
    q = math.floor(load * QUEUE_PER_LOAD * 10.0) / 10.0
    want = level(load)
    if level_of_queue(q) != want:
        if want == "low":
            q = round(QUEUE_LOW_MEDIUM - 0.1, 1)
        elif want == "high":
            q = QUEUE_MEDIUM_HIGH
        else:
            q = QUEUE_LOW_MEDIUM if q < QUEUE_LOW_MEDIUM else round(QUEUE_MEDIUM_HIGH - 0.1, 1)
    return q


def level_of_queue(queue: float) -> str:
    """The congestion label of an observed (or averaged) queue length."""
    return "low" if queue < QUEUE_LOW_MEDIUM else "medium" if queue < QUEUE_MEDIUM_HIGH else "high"


def _rng(seed: int, *key) -> random.Random:
    # A string seed is hashed with SHA-512: the same draws in every process, whatever PYTHONHASHSEED.
    return random.Random("/".join(str(k) for k in (seed, *key)))


def sim_minute(seq: int, start_minute: int, minutes_per_message: float) -> int:
    """Simulated minute (since Monday 00:00 of week 0) of a sensor's seq-th message."""
    return start_minute + int((seq - 1) * minutes_per_message)


def reading(seed: int, intersection: str, seq: int, start_minute: int = 7 * 60,
            minutes_per_message: float = 1.0) -> dict:
    """The seq-th reading (seq >= 1) of one intersection: a pure function of its arguments.

    City-wide conditions (weather, temperature) depend only on the seed and the simulated time, so
    sensors in different processes agree; each intersection's level for a 15-minute slot is drawn
    once per slot (like one row of generate.py) and each reading jitters a little around it.
    """
    if intersection not in INTERSECTIONS:
        raise ValueError(f"unknown intersection {intersection!r} (known: {', '.join(NAMES)})")
    capacity, peak_share, ped_peak, _ = INTERSECTIONS[intersection]
    minute = sim_minute(seq, start_minute, minutes_per_message)
    slot, block = minute // SLOT_MIN, minute // WEATHER_BLOCK_MIN
    hour, weekday = (minute // 60) % 24, (minute // (24 * 60)) % 7

    city = _rng(seed, "weather", block)
    weather = city.choices(WEATHER, weights=WEATHER_MIX)[0]
    day_noise = city.gauss(0.0, 3.5)
    here = _rng(seed, intersection, "slot", slot)
    vehicle_noise = here.lognormvariate(0.0, VEHICLE_NOISE)
    pedestrian_noise = here.lognormvariate(0.0, PEDESTRIAN_NOISE)
    load_noise = here.lognormvariate(0.0, LOAD_NOISE)
    now = _rng(seed, intersection, "seq", seq)

    diurnal = 5.0 * math.cos((hour + 0.5 - 15.0) / 24.0 * 2 * math.pi)
    temperature = BASE_TEMP + diurnal + TEMP_OFFSET[weather] + day_noise + now.gauss(0.0, READING_TEMP_JITTER)
    profile = demand_profile(hour, weekday)
    vehicles = (capacity * peak_share * profile * DEMAND_FACTOR[weather] * vehicle_noise
                * now.lognormvariate(0.0, READING_VEHICLE_JITTER))
    walk = (0.55 if weather in ("rain", "snow") else 1.0) * min(max((temperature + 10) / 25, 0.3), 1.2)
    nightlife = intersection in NIGHTLIFE and weekday in (4, 5) and hour >= 20
    crowd = max(0.15 + 0.85 * profile, 1.0 if nightlife else 0.0)
    pedestrians = ped_peak * crowd * walk * pedestrian_noise * now.lognormvariate(0.0, READING_PEDESTRIAN_JITTER)
    load = vehicles / effective_capacity(intersection, hour, weekday, weather, temperature, pedestrians) * load_noise
    dead = now.random() < DEAD_SENSOR
    return {
        "intersection": intersection,
        "seq": seq,
        "slot": slot,
        "hour": hour,
        "weekday": weekday,
        "weather": weather,
        "temperature_c": None if dead else round(temperature, 1) + 0.0,  # + 0.0: no -0.0
        "vehicles_per_min": round(vehicles, 1),
        "pedestrians_per_min": round(pedestrians, 1),
        "queue_length": queue_length(load),
    }
