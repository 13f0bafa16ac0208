"""The cascade measurement: tiny's uncertain band escalated to the ensemble."""
import numpy as np

from training import cascade


def _scores():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    device = np.array([0.1, 0.45, 0.55, 0.2, 0.9, 0.52, 0.48, 0.8])  # wrong on 0.55 and 0.48
    server = np.array([0.4, 0.2, 0.3, 0.4, 0.6, 0.9, 0.7, 0.6])      # right everywhere
    return device, server, y


def test_the_curve_runs_from_the_device_alone_to_the_server_alone():
    device, server, y = _scores()
    points = cascade.cascade_curve(device, server, y, steps=11)
    assert points[0].escalated == 0.0 and points[0].accuracy == 0.75
    assert points[-1].escalated == 1.0 and points[-1].accuracy == 1.0
    assert [p.escalated for p in points] == sorted(p.escalated for p in points)


def test_a_band_escalates_only_the_scores_strictly_inside_it():
    device, server, y = _scores()
    point = cascade.cascade_at(device, server, y, 0.4, 0.6)
    assert point.escalated == 0.5  # 0.45, 0.55, 0.52, 0.48
    assert point.accuracy == 1.0


def test_the_narrowest_band_meeting_both_targets_is_chosen_or_the_miss_is_said():
    device, server, y = _scores()
    points = cascade.cascade_curve(device, server, y, steps=11)
    band, met = cascade.choose_band(points, server_accuracy=1.0, max_gap=0.0, max_escalated=0.5)
    assert met and band.escalated == 0.5 and band.accuracy == 1.0
    band, met = cascade.choose_band(points, server_accuracy=1.0, max_gap=0.0, max_escalated=0.25)
    assert not met and band.escalated <= 0.25
