//go:build cgo

package live

// The H.264 encoder binds libx264 directly (Debian's libx264-dev). The
// pion/mediadevices x264 bridge hard-codes x264_param_apply_profile(...,
// "high"), and Chromium's WebRTC receiver offers no High profile, so this
// small bridge applies "baseline" (constrained baseline, 42e01f) itself and
// also pins the encoder to one thread, so its CPU cost can be measured.
//
// This is the one native package besides edge/vision, on purpose: OpenCV's
// VideoWriter writes container files through FFmpeg, not the per-frame
// H.264 access units that a WebRTC track sends, so the encoder cannot live
// behind gocv. The file is behind the cgo build tag (x264_nocgo.go is the
// stand-in without cgo).

/*
#cgo pkg-config: x264
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <x264.h>

typedef struct {
	x264_t *enc;
	x264_picture_t pic;
	int64_t pts;
} plume_x264;

static plume_x264 *plume_x264_open(int width, int height, int fps, int kbps, int keyint, int *rc) {
	x264_param_t p;
	if (x264_param_default_preset(&p, "veryfast", "zerolatency") < 0) { *rc = -1; return NULL; }
	p.i_csp = X264_CSP_I420;
	p.i_width = width;
	p.i_height = height;
	p.i_fps_num = fps;
	p.i_fps_den = 1;
	p.i_timebase_num = 1;
	p.i_timebase_den = fps;
	p.b_vfr_input = 0;
	p.i_threads = 1;
	p.b_sliced_threads = 0;
	p.i_keyint_max = keyint;
	p.i_keyint_min = 1;
	p.i_level_idc = 31;
	p.rc.i_rc_method = X264_RC_ABR;
	p.rc.i_bitrate = kbps;
	p.rc.i_vbv_max_bitrate = kbps;
	p.rc.i_vbv_buffer_size = kbps / 2;
	p.b_repeat_headers = 1;
	p.b_annexb = 1;
	p.i_log_level = X264_LOG_NONE;
	if (x264_param_apply_profile(&p, "baseline") < 0) { *rc = -2; return NULL; }
	plume_x264 *e = calloc(1, sizeof(plume_x264));
	if (!e) { *rc = -3; return NULL; }
	x264_picture_init(&e->pic);
	e->pic.img.i_csp = X264_CSP_I420;
	e->pic.img.i_plane = 3;
	e->enc = x264_encoder_open(&p);
	if (!e->enc) { free(e); *rc = -4; return NULL; }
	*rc = 0;
	return e;
}

// plume_x264_encode encodes one picture; x264 copies the planes, so the
// caller's memory is not kept. It returns the Annex B bytes' length (0 if
// x264 held the frame back) and points *out at them, valid until the next
// call.
static int plume_x264_encode(plume_x264 *e, uint8_t *y, uint8_t *u, uint8_t *v, int ystride, int cstride, int idr, uint8_t **out, int *keyframe) {
	x264_picture_t pic_out;
	x264_nal_t *nal;
	int n_nal;
	e->pic.img.plane[0] = y;
	e->pic.img.plane[1] = u;
	e->pic.img.plane[2] = v;
	e->pic.img.i_stride[0] = ystride;
	e->pic.img.i_stride[1] = cstride;
	e->pic.img.i_stride[2] = cstride;
	e->pic.i_type = idr ? X264_TYPE_IDR : X264_TYPE_AUTO;
	e->pic.i_pts = e->pts++;
	int size = x264_encoder_encode(e->enc, &nal, &n_nal, &e->pic, &pic_out);
	e->pic.img.plane[0] = e->pic.img.plane[1] = e->pic.img.plane[2] = NULL;
	if (size < 0) return size;
	*out = size > 0 ? nal[0].p_payload : NULL;
	*keyframe = pic_out.b_keyframe;
	return size;
}

static void plume_x264_close(plume_x264 *e) {
	x264_encoder_close(e->enc);
	free(e);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"image"
	"unsafe"
)

// h264Encoder is one libx264 encoder producing constrained-baseline Annex B
// access units. It is not safe for concurrent use.
type h264Encoder struct {
	e             *C.plume_x264
	width, height int
}

// newH264Encoder opens an encoder for width×height I420 pictures at fps,
// kbps kbit/s, with an IDR at least every keyint frames.
func newH264Encoder(width, height, fps, kbps, keyint int) (*h264Encoder, error) {
	if width <= 0 || height <= 0 || width%2 != 0 || height%2 != 0 {
		return nil, fmt.Errorf("open h264 encoder: size %dx%d must be positive and even", width, height)
	}
	var rc C.int
	e := C.plume_x264_open(C.int(width), C.int(height), C.int(fps), C.int(kbps), C.int(keyint), &rc)
	if e == nil {
		return nil, fmt.Errorf("open h264 encoder: x264 error %d", int(rc))
	}
	return &h264Encoder{e: e, width: width, height: height}, nil
}

// Encode encodes img (which must match the encoder's size and be 4:2:0)
// and returns a copy of the access unit, or nil when x264 produced none.
func (h *h264Encoder) Encode(img *image.YCbCr, idr bool) (au []byte, keyframe bool, err error) {
	if h.e == nil {
		return nil, false, errors.New("h264 encode: encoder closed")
	}
	if img.SubsampleRatio != image.YCbCrSubsampleRatio420 || img.Rect.Dx() != h.width || img.Rect.Dy() != h.height {
		return nil, false, fmt.Errorf("h264 encode: want %dx%d 4:2:0, got %v %v", h.width, h.height, img.Rect.Size(), img.SubsampleRatio)
	}
	y := img.Y[img.YOffset(img.Rect.Min.X, img.Rect.Min.Y):]
	ci := img.COffset(img.Rect.Min.X, img.Rect.Min.Y)
	var out *C.uint8_t
	var kf C.int
	n := C.plume_x264_encode(h.e, (*C.uint8_t)(unsafe.Pointer(&y[0])), (*C.uint8_t)(unsafe.Pointer(&img.Cb[ci])), (*C.uint8_t)(unsafe.Pointer(&img.Cr[ci])),
		C.int(img.YStride), C.int(img.CStride), boolInt(idr), &out, &kf)
	if n < 0 {
		return nil, false, fmt.Errorf("h264 encode: x264 error %d", int(n))
	}
	if n == 0 {
		return nil, false, nil
	}
	return C.GoBytes(unsafe.Pointer(out), n), kf != 0, nil
}

// Close frees the encoder.
func (h *h264Encoder) Close() {
	if h.e != nil {
		C.plume_x264_close(h.e)
		h.e = nil
	}
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}
