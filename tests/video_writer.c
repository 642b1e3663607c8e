/* Test videos encoded with libavcodec (video_writer.h). */
#include "video_writer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/display.h>
#include <libavutil/opt.h>

static uint8_t clamp8(double x) { return (uint8_t)(x < 0 ? 0 : x > 255 ? 255 : lround(x)); }

static void rgb2yuv(int r, int g, int b, int full, uint8_t *y, uint8_t *u, uint8_t *v)
{
    double Y = 0.299 * r + 0.587 * g + 0.114 * b, U = (b - Y) / 1.772, V = (r - Y) / 1.402;
    double ys = full ? 1 : 219.0 / 255, cs = full ? 1 : 224.0 / 255;
    *y = clamp8((full ? 0 : 16) + Y * ys);
    *u = clamp8(128 + U * cs);
    *v = clamp8(128 + V * cs);
}

/* RGB to the frame's planes; chroma from the top-left pixel of each 2x2 block. */
static void to_yuv(AVFrame *f, const uint8_t *rgb, int w, int h, int full)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const uint8_t *p = rgb + ((size_t)y * w + x) * 3;
            uint8_t Y, U, V;
            rgb2yuv(p[0], p[1], p[2], full, &Y, &U, &V);
            f->data[0][y * f->linesize[0] + x] = Y;
            if (!(x & 1) && !(y & 1)) {
                f->data[1][(y / 2) * f->linesize[1] + x / 2] = U;
                f->data[2][(y / 2) * f->linesize[2] + x / 2] = V;
            }
        }
}

static int write_packets(AVCodecContext *enc, AVFormatContext *oc, AVStream *st, AVFrame *f)
{
    int r = avcodec_send_frame(enc, f);
    if (r < 0) return r;
    AVPacket *pkt = av_packet_alloc();
    while ((r = avcodec_receive_packet(enc, pkt)) == 0) {
        av_packet_rescale_ts(pkt, enc->time_base, st->time_base);
        pkt->stream_index = st->index;
        if ((r = av_interleaved_write_frame(oc, pkt)) < 0) break;
    }
    av_packet_free(&pkt);
    return r == AVERROR(EAGAIN) || r == AVERROR_EOF ? 0 : r;
}

int test_video_write(const char *path, const test_video_spec *s, test_video_paint_fn paint, void *user)
{
    const AVCodec *codec = avcodec_find_encoder_by_name(s->codec);
    if (!codec) return -1;
    AVFormatContext *oc = NULL;
    int ok = avformat_alloc_output_context2(&oc, NULL, s->format, path) >= 0;
    AVStream *st = ok ? avformat_new_stream(oc, NULL) : NULL;
    AVCodecContext *enc = avcodec_alloc_context3(codec);
    int full = strcmp(s->codec, "mjpeg") == 0;
    enc->width = s->w;
    enc->height = s->h;
    enc->pix_fmt = full ? AV_PIX_FMT_YUVJ420P : AV_PIX_FMT_YUV420P;
    enc->color_range = full ? AVCOL_RANGE_JPEG : AVCOL_RANGE_MPEG;
    enc->time_base = (AVRational){1, s->fps};
    enc->framerate = (AVRational){s->fps, 1};
    enc->gop_size = s->gop;
    enc->max_b_frames = s->bframes;
    if (strcmp(s->codec, "libx264") == 0) {
        av_opt_set(enc->priv_data, "preset", "veryfast", 0);
        av_opt_set(enc->priv_data, "crf", "12", 0);
    } else {
        enc->flags |= AV_CODEC_FLAG_QSCALE | AV_CODEC_FLAG_CLOSED_GOP;
        enc->global_quality = FF_QP2LAMBDA * 2;
        av_opt_set_int(enc, "sc_threshold", 1000000000, AV_OPT_SEARCH_CHILDREN); /* key frames every gop exactly */
    }
    if (ok && (oc->oformat->flags & AVFMT_GLOBALHEADER)) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    ok = ok && st && avcodec_open2(enc, codec, NULL) >= 0 && avcodec_parameters_from_context(st->codecpar, enc) >= 0;
    if (ok) {
        st->time_base = enc->time_base;
        st->avg_frame_rate = enc->framerate;
        if (s->claim_w) {
            st->codecpar->width = s->claim_w;
            st->codecpar->height = s->claim_h;
        }
        if (s->rotation) {
            uint8_t *m = av_stream_new_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, 9 * sizeof(int32_t));
            av_display_rotation_set((int32_t *)m, (double)s->rotation); /* clockwise */
        }
    }
    AVDictionary *mux = NULL;
    if (s->faststart) av_dict_set(&mux, "movflags", "+faststart", 0);
    ok = ok && avio_open(&oc->pb, path, AVIO_FLAG_WRITE) >= 0 && avformat_write_header(oc, &mux) >= 0;
    av_dict_free(&mux);
    AVFrame *f = av_frame_alloc();
    uint8_t *rgb = malloc((size_t)s->w * s->h * 3);
    ok = ok && f && rgb;
    if (ok) {
        f->format = enc->pix_fmt;
        f->width = s->w;
        f->height = s->h;
        ok = av_frame_get_buffer(f, 0) >= 0;
    }
    for (int k = 0; ok && k < s->frames; k++) {
        ok = av_frame_make_writable(f) >= 0;
        paint(rgb, s->w, s->h, k, user);
        to_yuv(f, rgb, s->w, s->h, full);
        f->pts = k;
        ok = ok && write_packets(enc, oc, st, f) >= 0;
    }
    ok = ok && write_packets(enc, oc, st, NULL) >= 0 && av_write_trailer(oc) >= 0;
    free(rgb);
    av_frame_free(&f);
    avcodec_free_context(&enc);
    if (oc && oc->pb) avio_closep(&oc->pb);
    avformat_free_context(oc);
    return ok ? 0 : 1;
}

int test_audio_write(const char *p)
{
    AVFormatContext *oc = NULL;
    int ok = avformat_alloc_output_context2(&oc, NULL, "matroska", p) >= 0;
    AVStream *st = ok ? avformat_new_stream(oc, NULL) : NULL;
    ok = ok && st;
    if (ok) {
        st->codecpar->codec_type = AVMEDIA_TYPE_AUDIO;
        st->codecpar->codec_id = AV_CODEC_ID_PCM_S16LE;
        st->codecpar->sample_rate = 8000;
        av_channel_layout_default(&st->codecpar->ch_layout, 1);
        st->time_base = (AVRational){1, 8000};
    }
    ok = ok && avio_open(&oc->pb, p, AVIO_FLAG_WRITE) >= 0 && avformat_write_header(oc, NULL) >= 0;
    for (int i = 0; ok && i < 10; i++) {
        AVPacket *pkt = av_packet_alloc();
        ok = av_new_packet(pkt, 1600) >= 0;
        memset(pkt->data, 0, 1600);
        pkt->pts = pkt->dts = av_rescale_q(i * 800, (AVRational){1, 8000}, st->time_base);
        pkt->duration = av_rescale_q(800, (AVRational){1, 8000}, st->time_base);
        pkt->stream_index = 0;
        ok = ok && av_interleaved_write_frame(oc, pkt) >= 0;
        av_packet_free(&pkt);
    }
    ok = ok && av_write_trailer(oc) >= 0;
    if (oc && oc->pb) avio_closep(&oc->pb);
    avformat_free_context(oc);
    return ok ? 0 : 1;
}
