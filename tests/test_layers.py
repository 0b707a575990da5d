"""peers/camera/layers.py: --layers lists, their sizes, frame rates and bitrates."""

import pytest
from peercam.peers.camera.layers import LayerError, default_bitrate, nearest, parse_layers


def names(layers):
    return [(layer.name, layer.width, layer.height, layer.fps) for layer in layers]


def test_auto_is_the_capture_height_and_each_standard_height_below_it():
    assert names(parse_layers("auto", 1920, 1080, 30)) == [
        ("1080p", 1920, 1080, 30), ("720p", 1280, 720, 30), ("480p", 854, 480, 30), ("360p", 640, 360, 30)]
    assert names(parse_layers("auto", 640, 480, 30)) == [("480p", 640, 480, 30), ("360p", 480, 360, 30)]
    assert names(parse_layers("auto", 480, 640, 25)) == [  # portrait: heights, as named
        ("640p", 480, 640, 25), ("480p", 360, 480, 25), ("360p", 270, 360, 25)]


def test_widths_keep_the_aspect_ratio_and_are_even():
    layers = parse_layers("720p,480p,360p,250p", 1280, 720, 30)
    for layer in layers:
        assert layer.width % 2 == 0 and layer.height % 2 == 0
        assert abs(layer.width / layer.height - 16 / 9) < 0.01
    portrait = parse_layers("auto", 720, 1280, 30)
    sizes = [(layer.width, layer.height) for layer in portrait]
    assert sizes == [(720, 1280), (406, 720), (270, 480), (202, 360)]


def test_a_lower_frame_rate_takes_every_nth_frame():
    (top, low) = parse_layers("720p,360p@15", 1280, 720, 30)
    assert (top.step, low.step, low.fps, low.name) == (1, 2, 15, "360p@15")
    (odd,) = parse_layers("360p@10", 1280, 720, 25)
    assert (odd.step, odd.fps) == (2, 12.5)  # the nearest whole step; its real rate in the name
    assert odd.name == "360p@12.5"


@pytest.mark.parametrize("spec, words", [
    ("1080p", "largest possible layer is 720p"),
    ("720p,banana", "bad layer 'banana'"),
    ("720p,720p@15", "listed twice"),
    ("360p@60", "at most the capture's 30"),
    ("", "bad layer"),
])
def test_bad_lists_are_refused_with_a_reason(spec, words):
    with pytest.raises(LayerError, match=words):
        parse_layers(spec, 1280, 720, 30)


def test_bitrates_suit_the_size_and_the_top_one_can_be_set():
    layers = parse_layers("auto", 1920, 1080, 30)
    rates = [layer.bitrate for layer in layers]
    assert rates == sorted(rates, reverse=True) and rates[1] == 2_500_000
    assert default_bitrate(640, 360, 15) < default_bitrate(640, 360, 30)
    assert parse_layers("auto", 1280, 720, 30, top_bitrate=4_000_000)[0].bitrate == 4_000_000


def test_nearest_layer_by_name_or_height():
    layers = parse_layers("auto", 1280, 720, 30)
    assert nearest(layers, "480p").name == "480p"
    assert nearest(layers, "1080p").name == "720p"
    assert nearest(layers, "400p").name == "360p"
