"""peercam/shared/adaptation.py: the Ladder's hysteresis, with the clock in the test's hands."""

from peercam.shared.adaptation import Ladder


def run(ladder: Ladder, samples: list[tuple[float, str | None]], **kwargs) -> list[tuple[float, int, str]]:
    moves = []
    for now, trouble in samples:
        move = ladder.observe(now, trouble, **kwargs)
        if move is not None:
            moves.append((now, move.rung, move.reason))
    return moves


def test_sustained_trouble_steps_down_within_three_seconds_and_one_bad_sample_does_not():
    ladder = Ladder(3)
    assert run(ladder, [(0, None), (1, "5% loss"), (2, None), (3, None)]) == []
    assert run(ladder, [(4, "9% loss"), (5, "9% loss")]) == [(5, 1, "9% loss")]


def test_severe_trouble_steps_down_at_once_and_a_ceiling_jumps_rungs():
    ladder = Ladder(4)
    assert ladder.observe(0, "80% loss", ceiling=3, severe=True).rung == 3


def test_clean_steps_up_after_a_while_and_a_failed_probe_backs_off():
    ladder = Ladder(3, start=2)
    moves = run(ladder, [(t, None) for t in range(0, 9)])
    assert moves == [(8, 1, "clean for 8 s")]
    # The probe meets trouble (once the old rung's reports are through): straight back down,
    # and the next probe waits twice as long.
    assert run(ladder, [(9.5, "10% loss")]) == []  # settling: a report from before the move
    assert run(ladder, [(10.5, "10% loss")]) == [(10.5, 2, "10% loss")]
    assert run(ladder, [(t, None) for t in range(13, 29)]) == []
    assert run(ladder, [(29, None)]) == [(29, 1, "clean for 16 s")]


def test_a_probe_that_holds_lets_the_next_step_come_sooner():
    ladder = Ladder(3, start=2)
    run(ladder, [(t, None) for t in range(0, 9)])  # up to 1 at t=8
    # Held for 4 s: the next step comes at once, its clean time counted from the probe.
    assert run(ladder, [(t, None) for t in range(9, 18)]) == [(12, 0, "clean for 4 s")]


def test_no_flapping_under_steady_trouble_and_nothing_below_the_bottom():
    ladder = Ladder(2)
    moves = run(ladder, [(t, "40% loss") for t in range(0, 60)])
    assert [rung for _, rung, _ in moves] == [1]


def test_right_after_a_move_the_old_rungs_reports_are_ignored():
    ladder = Ladder(3)
    ladder.observe(0, "50% loss", severe=True)
    assert ladder.observe(1.5, "50% loss", severe=True) is None  # settling
    assert ladder.observe(2.5, "50% loss", severe=True).rung == 2
