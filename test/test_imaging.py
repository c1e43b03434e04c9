"""Image conversion with cv_bridge's semantics (no OpenCV needed), crop and resize."""
import numpy as np
import pytest

from aura_ros.imaging import ImageFormatError, crop_resize, image_to_rgb, rgb_to_msg_fields

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8)


def fields(array, encoding, pad=0):
    h, w = array.shape[:2]
    row = array.reshape(h, -1).view(np.uint8)
    data = np.concatenate([row, np.zeros((h, pad), np.uint8)], axis=1)
    return w, h, encoding, row.shape[1] + pad, data.tobytes()


@pytest.mark.parametrize('encoding, array', [
    ('rgb8', RGB), ('bgr8', RGB[:, :, ::-1]),
    ('rgba8', np.dstack([RGB, np.full((6, 8), 7, np.uint8)])),
    ('bgra8', np.dstack([RGB[:, :, ::-1], np.full((6, 8), 7, np.uint8)]))])
def test_colour_encodings_give_the_same_rgb(encoding, array):
    out = image_to_rgb(*fields(np.ascontiguousarray(array), encoding))
    assert out.shape == (6, 8, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, RGB)


def test_row_padding_in_step_is_ignored():
    np.testing.assert_array_equal(image_to_rgb(*fields(RGB, 'rgb8', pad=5)), RGB)


def test_mono8_and_mono16_scaled_like_cv_bridge():
    gray = RGB[:, :, 0]
    np.testing.assert_array_equal(image_to_rgb(*fields(gray, 'mono8')),
                                  np.repeat(gray[:, :, None], 3, 2))
    g16 = np.array([[0, 257, 65535, 32768]], np.uint16)
    out = image_to_rgb(4, 1, 'mono16', 8, g16.astype('<u2').tobytes(), is_bigendian=False)
    assert out[0, :, 0].tolist() == [0, 1, 255, 128]  # rint(v * 255 / 65535)
    big = image_to_rgb(4, 1, 'mono16', 8, g16.astype('>u2').tobytes(), is_bigendian=True)
    np.testing.assert_array_equal(out, big)


def yuv_reference(y, u, v):
    """BT.601 limited range, float."""
    c, d, e = 1.164 * (y - 16.0), u - 128.0, v - 128.0
    return np.clip(np.stack([c + 1.596 * e, c - 0.391 * d - 0.813 * e, c + 2.018 * d], -1),
                   0, 255)


@pytest.mark.parametrize('encoding', ['yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv'])
def test_yuv422_matches_bt601(encoding):
    h, w = 4, 6
    y = RNG.integers(16, 236, (h, w))
    u = RNG.integers(16, 241, (h, w // 2))
    v = RNG.integers(16, 241, (h, w // 2))
    quads = np.zeros((h, w // 2, 4), np.uint8)
    if encoding in ('yuv422', 'uyvy'):
        quads[..., 0], quads[..., 1], quads[..., 2], quads[..., 3] = u, y[:, ::2], v, y[:, 1::2]
    else:
        quads[..., 0], quads[..., 1], quads[..., 2], quads[..., 3] = y[:, ::2], u, y[:, 1::2], v
    out = image_to_rgb(w, h, encoding, 2 * w, quads.tobytes())
    ref = yuv_reference(y, np.repeat(u, 2, 1), np.repeat(v, 2, 1))
    assert np.abs(out.astype(float) - ref).max() <= 1.5


@pytest.mark.parametrize('args, reason', [
    ((8, 6, 'jpeg', 24, b'\0' * 144), 'unsupported encoding'),
    ((0, 6, 'rgb8', 0, b''), 'empty image'),
    ((8, 6, 'rgb8', 20, b'\0' * 120), 'step 20 < width'),
    ((8, 6, 'rgb8', 24, b'\0' * 100), 'data has 100 bytes'),
    ((8, 6, 'rgb8', 24, b'\0' * 200), 'data has 200 bytes'),
    ((5, 2, 'yuv422', 10, b'\0' * 20), 'even width'),
])
def test_malformed_images_are_refused_with_the_reason(args, reason):
    with pytest.raises(ImageFormatError, match=reason):
        image_to_rgb(*args)


def test_enormous_image_refused_before_touching_data():
    with pytest.raises(ImageFormatError, match='max_image_bytes'):
        image_to_rgb(100000, 100000, 'rgb8', 300000, b'', max_bytes=64 << 20)


def test_crop_resize_center_square():
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, 20:60] = 255  # the central 40x40 square is white, the sides black
    out = crop_resize(img, 16)
    assert out.shape == (16, 16, 3) and out.min() == 255
    assert crop_resize(img, 16, crop='none')[:, 0].max() == 0


def test_rgb_to_msg_fields_round_trip():
    f = rgb_to_msg_fields(RGB)
    back = image_to_rgb(f['width'], f['height'], f['encoding'], f['step'], f['data'])
    np.testing.assert_array_equal(back, RGB)
