"""peers/camera/layerchoice.py: what a P2P viewer's connection says, turned into its layer."""

from peercam.peers.camera.layerchoice import MAX_PROBE_WAIT, Evidence, LayerChoice
from peercam.peers.camera.layers import parse_layers

LAYERS = parse_layers("auto", 1280, 720, 30)  # 720p 2.5 Mbit/s, 480p 1.2, 360p 0.4


def test_heavy_loss_moves_at_once_to_the_layer_that_got_through():
    choice = LayerChoice(LAYERS, "auto")
    assert choice.layer.name == "720p"
    choice.observe(0, Evidence(rtt=0.005))
    move = choice.observe(1, Evidence(fraction_lost=0.8, rtt=0.09))
    # 2.5 Mbit/s x 20% fits only 360p
    assert (move.layer.name, move.reason, move.up) == ("360p", "80% loss", False)


def test_rtt_growth_and_queue_overflow_are_trouble_too():
    choice = LayerChoice(LAYERS, "auto")
    choice.observe(0, Evidence(rtt=0.004))
    assert choice.observe(1, Evidence(rtt=0.2)) is None  # one sample is not yet sustained
    move = choice.observe(2, Evidence(rtt=0.2))
    assert move.layer.name == "480p" and move.reason == "round trip 200 ms"
    assert choice.observe(4.5, Evidence(queue_drops=1)).reason == "send queue overflow"


def test_a_clean_connection_stays_on_the_top_layer():
    choice = LayerChoice(LAYERS, "auto")
    for t in range(30):
        assert choice.observe(t, Evidence(fraction_lost=0.01, rtt=0.004, estimate=400_000)) is None
    assert choice.layer.name == "720p"


def test_a_manual_pick_wins_and_auto_resumes_from_where_it_is():
    choice = LayerChoice(LAYERS, "480p")
    assert choice.layer.name == "480p"
    assert choice.observe(1, Evidence(fraction_lost=0.9)) is None  # manual: never moved
    assert choice.pick("360p").name == "360p"
    assert choice.pick("auto") is None and choice.layer.name == "360p"
    moves = [choice.observe(t, Evidence(rtt=0.004)) for t in range(2, 12)]
    assert [(m.layer.name, m.up) for m in moves if m] == [("480p", True)]


def test_a_probe_that_failed_keeps_the_layer_and_waits_longer_for_the_next():
    choice = LayerChoice(LAYERS, "auto")
    choice.observe(0, Evidence(fraction_lost=0.8))
    assert choice.layer.name == "360p"
    ups = []
    for t in range(3, 120):
        move = choice.observe(t, Evidence(rtt=0.004))
        if move is not None:
            assert move.up and move.layer.name == "480p"
            ups.append(t)
            choice.probe_failed(t)  # the padding did not get through: the viewer never moved
            assert choice.layer.name == "360p"
    gaps = [b - a for a, b in zip(ups, ups[1:], strict=False)]
    assert len(ups) >= 3 and gaps == sorted(gaps) and gaps[-1] >= MAX_PROBE_WAIT, ups


def test_a_name_the_camera_lacks_gets_the_nearest_layer():
    assert LayerChoice(LAYERS, "1080p").layer.name == "720p"


def test_the_sound_beside_a_layer_counts_against_what_got_through():
    """At 43% loss on 720p, 1.2 Mbit/s of 480p fits in 85% of what got through alone, but not
    with its 70 kbit/s of sound: that viewer goes down to 360p."""
    sound = {"720p": 70_000, "480p": 70_000, "360p": 38_000}
    moves = []
    for rates in (lambda layer: 0, lambda layer: sound[layer.name]):
        choice = LayerChoice(LAYERS, "auto", rates)
        choice.observe(0, Evidence(rtt=0.005))
        moves.append(choice.observe(1, Evidence(fraction_lost=0.43, rtt=0.005)).layer.name)
    assert moves == ["480p", "360p"]


def test_a_probe_aims_at_the_layer_and_its_sound_beyond_the_sound_sent_now():
    sound = {"720p": 70_000, "480p": 70_000, "360p": 38_000}
    choice = LayerChoice(LAYERS, "360p", lambda layer: sound[layer.name])
    four_eighty = next(layer for layer in LAYERS if layer.name == "480p")
    assert choice.probe_target(four_eighty) == int((four_eighty.bitrate + 70_000) / 0.85 - 38_000)
    assert LayerChoice(LAYERS, "360p").probe_target(four_eighty) == int(four_eighty.bitrate / 0.85)
