"""The progress bar's time estimate: none before the first group is done, then the average rate."""
from rich.progress import Progress

from tgvc_rt.progress import _advancer, _eta_column, eta_seconds, format_eta


def fake_bar(total):
    clock = [0.0]
    bar = Progress(get_time=lambda: clock[0], disable=True)
    task = bar.add_task("work", total=total)
    column = _eta_column()
    return clock, _advancer(bar, task), lambda: column.render(bar.tasks[0]).plain


def test_decode_burst_gives_an_honest_first_estimate():
    """The decoder emits a group's 16 frames at once after ~4 s of work: 48 frames are left, ~12 s."""
    clock, advance, eta = fake_bar(64)
    assert eta() == "-:--:--"
    clock[0] = 4.0
    for _ in range(16):
        advance(1)
        clock[0] += 0.001
    assert eta() == "0:00:12"   # 48 frames at 16 per 4.015 s: 12.05 s (rich's own column said 0:00:01)
    clock[0] = 8.0
    advance(16)
    assert eta() == "0:00:08"   # 32 frames at 32 per 8 s


def test_encode_estimate_after_the_first_group():
    """The encoder advances once per group: an estimate from the first group on (4 s for 15 frames)."""
    clock, advance, eta = fake_bar(61)
    assert eta() == "-:--:--"
    clock[0] = 4.0
    advance(15)
    assert eta() == "0:00:12"   # 46 frames * 4 / 15 = 12.3 s


def test_eta_seconds_and_format():
    assert eta_seconds(None, 0, 10) is None and eta_seconds(0.0, 0, 10) is None
    assert eta_seconds(2.0, 5, None) is None
    assert eta_seconds(2.0, 5, 10) == 2.0 and eta_seconds(2.0, 10, 10) == 0.0
    assert format_eta(None) == "-:--:--" and format_eta(3725.9) == "1:02:05"
