"""sensor_msgs/Image -> RGB numpy, with cv_bridge's semantics, no OpenCV needed; crop/resize.

Matches ``cv_bridge.imgmsg_to_cv2(msg, 'rgb8')``: size checks (step >= width * bytes per pixel,
height * step == len(data)), byte order for 16-bit data, mono16 -> 8 bit by 255/65535 with
rounding, alpha dropped, packed YUV 4:2:2 (``yuv422``/``uyvy`` = UYVY, ``yuv422_yuy2``/``yuyv`` =
YUYV) by OpenCV's fixed-point BT.601 conversion. All numpy views and vectorised ops.
"""
import sys

import numpy as np

# encoding -> (channels, bytes per channel)
LAYOUTS = {'rgb8': (3, 1), 'bgr8': (3, 1), 'rgba8': (4, 1), 'bgra8': (4, 1), 'mono8': (1, 1),
           'mono16': (1, 2), 'yuv422': (2, 1), 'uyvy': (2, 1), 'yuv422_yuy2': (2, 1),
           'yuyv': (2, 1)}
SUPPORTED_ENCODINGS = tuple(LAYOUTS)
# OpenCV's ITU-R BT.601 fixed-point coefficients (<< 20) for YUV 4:2:2 -> RGB.
_CY, _CUB, _CUG, _CVG, _CVR, _SHIFT = 1220542, 2116026, -409993, -852492, 1673527, 20


class ImageFormatError(ValueError):
    """A frame that cannot be converted; the message says why."""


def check_layout(width, height, encoding, step, data, max_bytes=None):
    """Refuse (ImageFormatError, with the reason) what cv_bridge would refuse or misread;
    returns (channels, bytes per channel)."""
    if encoding not in LAYOUTS:
        raise ImageFormatError(f'unsupported encoding {encoding!r}; supported: '
                               f'{", ".join(SUPPORTED_ENCODINGS)}')
    if width <= 0 or height <= 0:
        raise ImageFormatError(f'empty image {width}x{height}')
    channels, depth = LAYOUTS[encoding]
    row = width * channels * depth
    if step < row:
        raise ImageFormatError(f'step {step} < width {width} * {channels * depth} bytes per '
                               f'pixel = {row}')
    if max_bytes is not None and height * step > max_bytes:
        raise ImageFormatError(f'image of {height * step} bytes exceeds max_image_bytes '
                               f'{max_bytes}')
    if len(data) != height * step:
        raise ImageFormatError(f'data has {len(data)} bytes, height {height} * step {step} = '
                               f'{height * step}')
    if encoding in ('yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv') and width % 2:
        raise ImageFormatError(f'{encoding} needs an even width, got {width}')
    return channels, depth


def image_to_rgb(width, height, encoding, step, data, is_bigendian=False, max_bytes=None):
    """(H, W, 3) uint8 RGB from the fields of a sensor_msgs/Image."""
    channels, depth = check_layout(width, height, encoding, step, data, max_bytes)
    row = width * channels * depth
    buf = np.frombuffer(data, np.uint8).reshape(height, step)[:, :row]   # view, no copy
    if depth == 2:
        big = is_bigendian if is_bigendian is not None else sys.byteorder == 'big'
        pixels = buf.view('>u2' if big else '<u2').reshape(height, width)
        gray = np.rint(pixels.astype(np.float32) * (255.0 / 65535.0)).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    pixels = buf.reshape(height, width, channels)
    if encoding == 'rgb8':
        return pixels
    if encoding in ('bgr8', 'bgra8'):
        return pixels[:, :, 2::-1]
    if encoding == 'rgba8':
        return pixels[:, :, :3]
    if encoding == 'mono8':
        return np.repeat(pixels, 3, axis=2)
    return _yuv422_to_rgb(buf.reshape(height, width // 2, 4),
                          uyvy=encoding in ('yuv422', 'uyvy'))


def _yuv422_to_rgb(quads, uyvy):
    """(H, W/2, 4) packed 4:2:2 -> (H, W, 3) RGB, OpenCV's integer arithmetic."""
    q = quads.astype(np.int32)
    if uyvy:   # U Y0 V Y1
        u, y0, v, y1 = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    else:      # Y0 U Y1 V
        y0, u, y1, v = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    u, v = u - 128, v - 128
    half = 1 << (_SHIFT - 1)
    ruv, guv, buv = half + _CVR * v, half + _CVG * v + _CUG * u, half + _CUB * u
    y = np.stack([y0, y1], axis=-1)                                   # (H, W/2, 2)
    y = np.maximum(y - 16, 0) * _CY
    rgb = np.stack([(y + ruv[..., None]) >> _SHIFT, (y + guv[..., None]) >> _SHIFT,
                    (y + buv[..., None]) >> _SHIFT], axis=-1)        # (H, W/2, 2, 3)
    return np.clip(rgb, 0, 255).astype(np.uint8).reshape(q.shape[0], -1, 3)


def crop_resize(rgb, size, crop='center'):
    """(H, W, 3) -> (size, size, 3) uint8: central square crop (or none), bilinear resize."""
    from PIL import Image
    h, w = rgb.shape[:2]
    if crop == 'center' and h != w:
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        rgb = rgb[top:top + side, left:left + side]
    if rgb.shape[:2] == (size, size):
        return np.ascontiguousarray(rgb)
    return np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize(
        (size, size), Image.BILINEAR))


def rgb_to_msg_fields(rgb):
    """Fields of an rgb8 sensor_msgs/Image for an (H, W, 3) uint8 array."""
    h, w = rgb.shape[:2]
    return dict(height=h, width=w, encoding='rgb8', is_bigendian=0, step=w * 3,
                data=np.ascontiguousarray(rgb).tobytes())
