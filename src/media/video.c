/*
 * Video decoding with FFmpeg's libraries: custom I/O over a file descriptor or memory (so
 * FFmpeg opens nothing else), stream choice, header checks before anything is decoded,
 * sampling by seeking to keyframes and decoding forward, conversion to RGB with swscale,
 * rotation. The API and its promises are in video.h; docs/media.md has the background.
 *
 * Budgets. A hostile file must not make the decoder spin: the read callback counts the
 * bytes it hands FFmpeg, the packet loop counts packets and packets without progress, the
 * frame loop counts decoded frames and consecutive decoding errors; each has a bound that
 * depends on the file's size and the number of targets, far above what a real video needs.
 * Past a bound the read callback and FFmpeg's interrupt callback fail every further call,
 * and the run ends as damaged.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

#include "media/video.h"

#define IO_BUFFER 65536
#define MAX_STALLED_PACKETS 4096  /* packets in a row without the read position moving */
#define MAX_BAD_RUN 64            /* decoding errors in a row */
#define MAX_SEEK_RETRIES 3        /* seeks that land past the target before decoding forward */
#define SEEK_GAP_S 1.0            /* without an index: seek when the target is this far ahead */
#define GUESSED_FPS 25.0
#define MIB ((uint64_t)1 << 20)

/* Outcomes of decoding towards a target (position_for answers DECODE when it decoded
   nothing yet). */
enum { DECODE = 0, FOUND = 1, PAST = 2, END = 3 };

struct cored_video {
    char *name;
    /* the source: a file descriptor (pread) or memory */
    int fd;
    const uint8_t *mem;
    int64_t size, pos;
    uint64_t bytes_read, byte_budget;
    int budget_hit, io_errno, nested_refused;
    /* FFmpeg */
    AVIOContext *pb;
    AVFormatContext *fmt;
    AVCodecContext *dec;
    AVPacket *pkt;
    AVFrame *frame;
    struct SwsContext *sws;
    int sws_cs, sws_full, sws_w, sws_h, sws_fmt;
    int si;
    AVRational tb;
    int64_t start_pts;
    cored_video_options opts;
    cored_video_info info;
    cored_video_stats stats;
    /* the sampling run */
    int started, finished, dirty, mode_count;
    int count_k;
    int64_t count_n;
    double rate;
    int eof_sent, after_seek, have_time, bad_run, untimed_after_seek;
    double cur_time;
    int64_t seq_frames;
    int64_t pos_last, stalled;
    int64_t packet_budget, decode_budget;
    int64_t next_target;
    const char *stop_why;
    char stop_msg[256];
    /* output */
    uint8_t *rgb, *rot;
    size_t rgb_cap, rot_cap;
};

/* ---------------------------------------------------------------- FFmpeg's log */

static _Thread_local char av_last[256]; /* FFmpeg's last error message on this thread */
static pthread_once_t log_once = PTHREAD_ONCE_INIT;

static void av_log_to_cored(void *avcl, int level, const char *fmt, va_list vl)
{
    if (level > AV_LOG_WARNING) return;
    char line[1024];
    va_list copy;
    va_copy(copy, vl);
    if (level <= AV_LOG_ERROR) {
        vsnprintf(av_last, sizeof av_last, fmt, copy);
        size_t n = strlen(av_last);
        while (n && (av_last[n - 1] == '\n' || av_last[n - 1] == ' ' || av_last[n - 1] == '.')) av_last[--n] = 0;
    }
    va_end(copy);
    int prefix = 1;
    av_log_format_line2(avcl, level, fmt, vl, line, sizeof line, &prefix);
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n') line[--n] = 0;
    cored_log(CORED_LOG_DEBUG, "ffmpeg: %s", line);
}

static void log_init(void) { av_log_set_callback(av_log_to_cored); }

void cored_video_init(void) { pthread_once(&log_once, log_init); }

/* " (FFmpeg: <its last error>)" or "" */
static const char *av_reason(char *buf, size_t n)
{
    if (!av_last[0]) return "";
    snprintf(buf, n, " (FFmpeg: %s)", av_last);
    return buf;
}

static void av_errstr(int code, char *buf, size_t n)
{
    if (av_strerror(code, buf, n) < 0) snprintf(buf, n, "error %d", code);
}

/* ---------------------------------------------------------------- the source */

static int source_read(void *opaque, uint8_t *buf, int n)
{
    cored_video *v = opaque;
    if (v->budget_hit) return AVERROR_EXIT;
    if (v->bytes_read >= v->byte_budget) {
        v->budget_hit = 1;
        return AVERROR_EXIT;
    }
    if (n <= 0) return 0;
    if (v->pos >= v->size) return AVERROR_EOF;
    int64_t want = v->size - v->pos < n ? v->size - v->pos : n;
    ssize_t got;
    if (v->mem) {
        memcpy(buf, v->mem + v->pos, (size_t)want);
        got = want;
    } else {
        do got = pread(v->fd, buf, (size_t)want, (off_t)v->pos);
        while (got < 0 && errno == EINTR);
        if (got < 0) {
            v->io_errno = errno;
            return AVERROR(errno);
        }
        if (got == 0) return AVERROR_EOF; /* shrank while being read */
    }
    v->pos += got;
    v->bytes_read += (uint64_t)got;
    return (int)got;
}

static int64_t source_seek(void *opaque, int64_t offset, int whence)
{
    cored_video *v = opaque;
    whence &= ~AVSEEK_FORCE;
    if (whence == AVSEEK_SIZE) return v->size;
    int64_t to = whence == SEEK_SET ? offset : whence == SEEK_CUR ? v->pos + offset
               : whence == SEEK_END ? v->size + offset : -1;
    if (whence != SEEK_SET && whence != SEEK_CUR && whence != SEEK_END) return AVERROR(EINVAL);
    if (to < 0) return AVERROR(EINVAL);
    v->pos = to;
    return to;
}

static int interrupt_cb(void *opaque)
{
    const cored_video *v = opaque;
    return v->budget_hit;
}

/* FFmpeg reads the one file it was given: playlists (HLS, DASH), concat lists, image
   sequences and external references cannot make it open anything else. */
static int refuse_io_open(AVFormatContext *s, AVIOContext **pb, const char *url, int flags, AVDictionary **options)
{
    (void)pb;
    (void)flags;
    (void)options;
    if (s->opaque) ((cored_video *)s->opaque)->nested_refused = 1;
    av_log(s, AV_LOG_ERROR, "refused to open '%s' from inside the file", url);
    return AVERROR(EPERM);
}

/* 1 when the first bytes of the file are text (no NUL, no control characters but
   whitespace): a clearer message than FFmpeg's for a text file named .mp4. */
static int looks_text(cored_video *v)
{
    uint8_t head[4096];
    int64_t n = v->size < (int64_t)sizeof head ? v->size : (int64_t)sizeof head;
    if (n <= 0) return 0;
    if (v->mem)
        memcpy(head, v->mem, (size_t)n);
    else if (pread(v->fd, head, (size_t)n, 0) != (ssize_t)n)
        return 0;
    for (int64_t i = 0; i < n; i++) {
        uint8_t c = head[i];
        if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f') || c == 0x7f) return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- opening */

static void close_av(cored_video *v)
{
    avcodec_free_context(&v->dec);
    avformat_close_input(&v->fmt);
    if (v->pb) {
        av_freep(&v->pb->buffer);
        avio_context_free(&v->pb);
    }
    sws_freeContext(v->sws);
    v->sws = NULL;
}

static int check_size(cored_video *v, int w, int h, const char *what, cored_error *err)
{
    size_t px = (size_t)(w > 0 ? w : 0) * (size_t)(h > 0 ? h : 0);
    if (w > CORED_VIDEO_MAX_SIDE || h > CORED_VIDEO_MAX_SIDE || px > v->opts.max_pixels)
        return CORED_FAIL(err, CORED_E_FORMAT,
                          "%s: %s of %dx%d pixels is above the limit (%zu pixels, %d per side): refused "
                          "before decoding",
                          v->name, what, w, h, v->opts.max_pixels, CORED_VIDEO_MAX_SIDE);
    return CORED_OK;
}

/* What the file holds instead of a video, for the message: "1 audio stream, 1 cover picture". */
static void describe_streams(const AVFormatContext *fmt, char *out, size_t n)
{
    int counts[6] = {0}, pics = 0;
    static const char *names[6] = {"video", "audio", "data", "subtitle", "attachment", "other"};
    for (unsigned i = 0; i < fmt->nb_streams; i++) {
        const AVStream *st = fmt->streams[i];
        int t = st->codecpar->codec_type;
        if (t == AVMEDIA_TYPE_VIDEO && (st->disposition & AV_DISPOSITION_ATTACHED_PIC))
            pics++;
        else
            counts[t >= 0 && t <= AVMEDIA_TYPE_ATTACHMENT ? t : 5]++;
    }
    out[0] = 0;
    size_t len = 0;
    for (int t = 0; t < 6; t++)
        if (counts[t] && len < n)
            len += (size_t)snprintf(out + len, n - len, "%s%d %s stream%s", len ? ", " : "", counts[t], names[t],
                                    counts[t] > 1 ? "s" : "");
    if (pics && len < n)
        len += (size_t)snprintf(out + len, n - len, "%s%d cover picture%s", len ? ", " : "", pics, pics > 1 ? "s" : "");
    if (!len) snprintf(out, n, "no streams at all");
}

static int fail_open(cored_video *v, int code, cored_error *err)
{
    char why[128], ff[300];
    if (v->budget_hit)
        return CORED_FAIL(err, CORED_E_FORMAT,
                          "%s: refused: reading its header took more than %llu MiB (a damaged or hostile file)",
                          v->name, (unsigned long long)(v->byte_budget / MIB));
    if (v->io_errno)
        return CORED_FAIL(err, CORED_E_IO, "%s: read failed: %s", v->name, strerror(v->io_errno));
    if (v->nested_refused)
        return CORED_FAIL(err, CORED_E_FORMAT,
                          "%s: refused: a playlist or list that refers to other files (cored reads only the file "
                          "it is given)%s",
                          v->name, av_reason(ff, sizeof ff));
    if (looks_text(v))
        return CORED_FAIL(err, CORED_E_FORMAT, "%s: not a video: the file holds text (%lld bytes)", v->name,
                          (long long)v->size);
    if (code == AVERROR_EOF)
        snprintf(why, sizeof why, "the file ends inside its header (cut short?)");
    else
        av_errstr(code, why, sizeof why);
    int rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: not a video FFmpeg can read: %s%s", v->name, why,
                        av_reason(ff, sizeof ff));
    if (strstr(av_last, "moov atom not found"))
        cored_error_hint(err, "an MP4/MOV without its index (moov): most likely cut short, since writers put the "
                              "index at the end");
    return rc;
}

/* Opens (or reopens) the format and the decoder from the start of the source. The first
   open fills info; later ones must find the same stream. */
static int open_av(cored_video *v, cored_error *err)
{
    close_av(v);
    v->pos = 0;
    v->io_errno = v->nested_refused = 0;
    av_last[0] = 0;
    int rc = CORED_OK, ret;
    AVDictionary *fopts = NULL, **sopts = NULL;
    unsigned nsopts = 0;
    char buf[64];

    uint8_t *iobuf = av_malloc(IO_BUFFER);
    if (iobuf) v->pb = avio_alloc_context(iobuf, IO_BUFFER, 0, v, source_read, NULL, source_seek);
    if (!v->pb) {
        av_free(iobuf);
        return CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot allocate FFmpeg's reader", v->name);
    }
    v->fmt = avformat_alloc_context();
    if (!v->fmt) return CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot allocate FFmpeg's demuxer", v->name);
    v->fmt->pb = v->pb;
    v->fmt->opaque = v;
    v->fmt->io_open = refuse_io_open;
    v->fmt->interrupt_callback.callback = interrupt_cb;
    v->fmt->interrupt_callback.opaque = v;
    /* no protocol at all for anything a demuxer opens on its own (nested contexts copy it) */
    av_dict_set(&fopts, "protocol_whitelist", "none", 0);
    ret = avformat_open_input(&v->fmt, v->name, NULL, &fopts); /* frees fmt on failure */
    av_dict_free(&fopts);
    if (ret < 0) return fail_open(v, ret, err);

    /* The frame size the header claims, before FFmpeg decodes anything. */
    for (unsigned i = 0; i < v->fmt->nb_streams; i++) {
        const AVCodecParameters *p = v->fmt->streams[i]->codecpar;
        if (p->codec_type == AVMEDIA_TYPE_VIDEO && (rc = check_size(v, p->width, p->height, "a frame size", err)))
            return rc;
    }
    nsopts = v->fmt->nb_streams;
    if (nsopts) {
        sopts = av_calloc(nsopts, sizeof *sopts);
        if (!sopts) return CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot allocate stream options", v->name);
        snprintf(buf, sizeof buf, "%zu", v->opts.max_pixels);
        for (unsigned i = 0; i < nsopts; i++) {
            av_dict_set(&sopts[i], "max_pixels", buf, 0);
            av_dict_set(&sopts[i], "threads", "1", 0);
        }
    }
    ret = avformat_find_stream_info(v->fmt, sopts);
    for (unsigned i = 0; i < nsopts; i++) av_dict_free(&sopts[i]);
    av_free(sopts);
    if (ret < 0 || v->budget_hit) return fail_open(v, ret < 0 ? ret : AVERROR_INVALIDDATA, err);

    /* The video stream: not a cover picture; the default one first, else the largest. */
    int best = -1;
    int64_t best_score = -1;
    for (unsigned i = 0; i < v->fmt->nb_streams; i++) {
        const AVStream *st = v->fmt->streams[i];
        if (st->codecpar->codec_type != AVMEDIA_TYPE_VIDEO || (st->disposition & AV_DISPOSITION_ATTACHED_PIC))
            continue;
        int64_t score = (int64_t)st->codecpar->width * st->codecpar->height +
                        ((st->disposition & AV_DISPOSITION_DEFAULT) ? ((int64_t)1 << 40) : 0);
        if (score > best_score) {
            best = (int)i;
            best_score = score;
        }
    }
    if (best < 0) {
        char what[200];
        describe_streams(v->fmt, what, sizeof what);
        rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: no video stream (the file holds %s)", v->name, what);
        for (unsigned i = 0; i < v->fmt->nb_streams; i++)
            if (v->fmt->streams[i]->codecpar->codec_id == AV_CODEC_ID_NONE)
                cored_error_hint(err, "a stream of unknown kind: the header may be damaged or cut short");
        return rc;
    }
    if (v->si >= 0 && v->si != best)
        return CORED_FAIL(err, CORED_E_INTERNAL, "%s: another video stream on reopening", v->name);
    v->si = best;
    AVStream *st = v->fmt->streams[best];
    for (unsigned i = 0; i < v->fmt->nb_streams; i++)
        if ((int)i != best) v->fmt->streams[i]->discard = AVDISCARD_ALL;
    const AVCodecParameters *par = st->codecpar;
    if ((rc = check_size(v, par->width, par->height, "a frame size", err))) return rc;
    const AVCodec *codec = avcodec_find_decoder(par->codec_id);
    if (!codec)
        return CORED_FAIL(err, CORED_E_FORMAT, "%s: its video codec (%s) cannot be decoded by this FFmpeg",
                          v->name, avcodec_get_name(par->codec_id));
    v->dec = avcodec_alloc_context3(codec);
    if (!v->dec) return CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot allocate a decoder", v->name);
    if (avcodec_parameters_to_context(v->dec, par) < 0)
        return CORED_FAIL(err, CORED_E_FORMAT, "%s: invalid codec parameters", v->name);
    v->dec->pkt_timebase = st->time_base;
    AVDictionary *dopts = NULL;
    snprintf(buf, sizeof buf, "%zu", v->opts.max_pixels);
    av_dict_set(&dopts, "max_pixels", buf, 0);
    snprintf(buf, sizeof buf, "%d", v->opts.threads > 1 ? v->opts.threads : 1);
    av_dict_set(&dopts, "threads", buf, 0);
    ret = avcodec_open2(v->dec, codec, &dopts);
    av_dict_free(&dopts);
    if (ret < 0) {
        char why[128], ff[300];
        av_errstr(ret, why, sizeof why);
        return CORED_FAIL(err, CORED_E_FORMAT, "%s: cannot open its %s decoder: %s%s", v->name, codec->name, why,
                          av_reason(ff, sizeof ff));
    }
    v->tb = st->time_base;
    if (v->tb.num <= 0 || v->tb.den <= 0) v->tb = (AVRational){1, 90000};
    v->start_pts = st->start_time != AV_NOPTS_VALUE ? st->start_time : 0;
    v->eof_sent = v->after_seek = v->have_time = v->bad_run = 0;
    v->seq_frames = 0;
    v->pos_last = -1;
    v->stalled = 0;
    return CORED_OK;
}

static int rotation_of(const AVStream *st)
{
    const int32_t *m = NULL;
#if LIBAVCODEC_VERSION_INT >= AV_VERSION_INT(60, 29, 100)
    const AVPacketSideData *sd = av_packet_side_data_get(st->codecpar->coded_side_data,
                                                         st->codecpar->nb_coded_side_data, AV_PKT_DATA_DISPLAYMATRIX);
    if (sd && sd->size >= 9 * sizeof(int32_t)) m = (const int32_t *)sd->data;
#else
    size_t size = 0;
    const uint8_t *d = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &size);
    if (d && size >= 9 * sizeof(int32_t)) m = (const int32_t *)d;
#endif
    if (!m) return 0;
    double ccw = av_display_rotation_get(m); /* counter-clockwise degrees, NaN if degenerate */
    if (!isfinite(ccw)) return 0;
    long q = lround(-ccw / 90.0);
    if (fabs(-ccw - 90.0 * (double)q) > 1.0)
        cored_log(CORED_LOG_DEBUG, "a rotation of %.1f degrees is applied as %ld", -ccw, q * 90);
    long cw = q * 90 % 360;
    return (int)(cw < 0 ? cw + 360 : cw);
}

static int is_image_demuxer(const char *name)
{
    size_t n = strlen(name);
    return strcmp(name, "image2") == 0 || (n > 5 && strcmp(name + n - 5, "_pipe") == 0);
}

static void fill_info(cored_video *v)
{
    const AVStream *st = v->fmt->streams[v->si];
    cored_video_info *in = &v->info;
    in->coded_width = st->codecpar->width;
    in->coded_height = st->codecpar->height;
    in->rotation = rotation_of(st);
    int swap = in->rotation == 90 || in->rotation == 270;
    in->width = swap ? in->coded_height : in->coded_width;
    in->height = swap ? in->coded_width : in->coded_height;
    AVRational r = st->avg_frame_rate;
    if (r.num <= 0 || r.den <= 0) r = st->r_frame_rate;
    double fps = r.num > 0 && r.den > 0 ? av_q2d(r) : 0;
    if (!(fps > 0 && fps < 1e6)) fps = 0;
    double dur = 0;
    if (st->duration > 0 && st->duration != AV_NOPTS_VALUE)
        dur = (double)st->duration * av_q2d(v->tb);
    else if (v->fmt->duration > 0 && v->fmt->duration != AV_NOPTS_VALUE)
        dur = (double)v->fmt->duration / AV_TIME_BASE;
    if (!(dur > 0 && dur < 1e9)) dur = 0;
    if (fps == 0 && st->nb_frames > 0 && dur > 0) fps = (double)st->nb_frames / dur;
    in->fps_guessed = fps == 0;
    in->fps = fps > 0 ? fps : GUESSED_FPS;
    in->duration = dur;
    if (st->nb_frames > 0) {
        in->frame_count = st->nb_frames;
        in->count_source = CORED_VIDEO_COUNT_HEADER;
    } else if (dur > 0 && !in->fps_guessed) {
        in->frame_count = llround(dur * in->fps);
        if (in->frame_count < 1) in->frame_count = 1;
        in->count_source = CORED_VIDEO_COUNT_DURATION;
    } else {
        in->frame_count = 0;
        in->count_source = CORED_VIDEO_COUNT_UNKNOWN;
    }
    if (in->duration == 0 && in->frame_count > 0 && !in->fps_guessed) in->duration = (double)in->frame_count / in->fps;
    in->still_image = is_image_demuxer(v->fmt->iformat->name);
    snprintf(in->container, sizeof in->container, "%s", v->fmt->iformat->name);
    snprintf(in->codec, sizeof in->codec, "%s", avcodec_get_name(st->codecpar->codec_id));
}

static int open_common(cored_video **out, cored_video *v, const cored_video_options *opts, cored_error *err)
{
    cored_video_init();
    if (opts) v->opts = *opts;
    if (v->opts.max_pixels == 0) v->opts.max_pixels = CORED_VIDEO_MAX_PIXELS_DEFAULT;
    v->si = -1;
    int rc = CORED_OK;
    if (v->size == 0) rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: empty file (0 bytes), not a video", v->name);
    v->pkt = av_packet_alloc();
    v->frame = av_frame_alloc();
    if (!rc && (!v->pkt || !v->frame)) rc = CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot allocate frames", v->name);
    /* Header budget: far above what any container's header and stream probing read. */
    v->byte_budget = 32 * (uint64_t)v->size + 64 * MIB;
    if (!rc) rc = open_av(v, err);
    if (!rc) fill_info(v);
    if (rc) {
        cored_video_close(v);
        return rc;
    }
    *out = v;
    return CORED_OK;
}

static const char *file_kind(mode_t m)
{
    return S_ISFIFO(m) ? "a FIFO" : S_ISDIR(m) ? "a folder" : S_ISCHR(m) ? "a character device"
         : S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket" : "not a regular file";
}

int cored_video_open(cored_video **out, const char *path, const cored_video_options *opts, cored_error *err)
{
    if (!out || !path) return CORED_FAIL(err, CORED_E_ARG, "cored_video_open: NULL argument");
    *out = NULL;
    int fd;
    do fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return CORED_FAIL(err, CORED_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return CORED_FAIL(err, CORED_E_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return CORED_FAIL(err, CORED_E_FORMAT, "%s: %s, not a regular file: refused without reading it", path,
                          file_kind(st.st_mode));
    }
    cored_video *v = cored_calloc(1, sizeof *v);
    char *name = cored_strdup(path);
    if (!v || !name) {
        close(fd);
        cored_free(v);
        cored_free(name);
        return CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot allocate a video", path);
    }
    v->name = name;
    v->fd = fd;
    v->size = st.st_size;
    return open_common(out, v, opts, err);
}

int cored_video_open_memory(cored_video **out, const uint8_t *data, size_t len, const char *name,
                            const cored_video_options *opts, cored_error *err)
{
    if (!out || (!data && len)) return CORED_FAIL(err, CORED_E_ARG, "cored_video_open_memory: NULL argument");
    *out = NULL;
    if (!name) name = "video";
    cored_video *v = cored_calloc(1, sizeof *v);
    char *nm = cored_strdup(name);
    if (!v || !nm) {
        cored_free(v);
        cored_free(nm);
        return CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot allocate a video", name);
    }
    v->name = nm;
    v->fd = -1;
    v->mem = data ? data : (const uint8_t *)"";
    v->size = (int64_t)len;
    return open_common(out, v, opts, err);
}

void cored_video_close(cored_video *v)
{
    if (!v) return;
    close_av(v);
    av_packet_free(&v->pkt);
    av_frame_free(&v->frame);
    if (v->fd >= 0 && !v->mem) close(v->fd);
    cored_free(v->rgb);
    cored_free(v->rot);
    cored_free(v->name);
    cored_free(v);
}

const cored_video_info *cored_video_get_info(const cored_video *v) { return v ? &v->info : NULL; }
const cored_video_stats *cored_video_get_stats(const cored_video *v) { return v ? &v->stats : NULL; }

/* ---------------------------------------------------------------- packets and frames */

/* Stream time stamps to seconds from the start and back, in doubles and clamped: a
   hostile file's time stamps must not overflow integer arithmetic. */
static double ts_to_s(const cored_video *v, int64_t ts)
{
    return ((double)ts - (double)v->start_pts) * av_q2d(v->tb);
}

static int64_t s_to_ts(const cored_video *v, double s)
{
    double x = floor((double)v->start_pts + s / av_q2d(v->tb));
    return !(x > -9e18) ? (int64_t)-9e18 : x > 9e18 ? (int64_t)9e18 : (int64_t)x;
}

static void damage(cored_video *v, const char *why)
{
    if (!v->stats.damaged) {
        v->stats.damaged = 1;
        v->stats.damaged_at = v->have_time ? v->cur_time : 0;
        v->stop_why = why;
        if (av_last[0]) snprintf(v->stop_msg, sizeof v->stop_msg, "%s", av_last);
    }
}

/* The next packet of the video stream: 1, 0 at the end of the file, -1 on damage
   (unreadable data, budget), -2 when reading the file failed (v->io_errno). Corrupt
   (short) packets are skipped and counted as damage. */
static int read_packet(cored_video *v)
{
    for (;;) {
        if (v->budget_hit) {
            damage(v, "read budget exceeded");
            return -1;
        }
        if (v->stats.packets >= v->packet_budget) {
            damage(v, "packet budget exceeded");
            return -1;
        }
        av_last[0] = 0;
        int r = av_read_frame(v->fmt, v->pkt);
        v->stats.packets++;
        if (r == AVERROR_EOF) return 0;
        if (r == AVERROR(EAGAIN)) {
            if (++v->stalled > MAX_STALLED_PACKETS) {
                damage(v, "the demuxer made no progress");
                return -1;
            }
            continue;
        }
        if (r < 0) {
            if (v->io_errno) return -2;
            if (v->budget_hit) {
                damage(v, "read budget exceeded");
            } else {
                damage(v, "unreadable data");
            }
            return -1;
        }
        int64_t pos = avio_tell(v->fmt->pb);
        if (pos == v->pos_last) {
            if (++v->stalled > MAX_STALLED_PACKETS) {
                av_packet_unref(v->pkt);
                damage(v, "the demuxer made no progress");
                return -1;
            }
        } else {
            v->stalled = 0;
            v->pos_last = pos;
        }
        if (v->pkt->stream_index != v->si) {
            av_packet_unref(v->pkt);
            continue;
        }
        if (v->pkt->flags & AV_PKT_FLAG_CORRUPT) {
            v->stats.bad_packets++;
            damage(v, "a corrupt or incomplete packet");
            av_packet_unref(v->pkt);
            continue;
        }
        return 1;
    }
}

static double frame_time(cored_video *v, const AVFrame *f, int *known)
{
    int64_t ts = f->best_effort_timestamp;
    if (ts == AV_NOPTS_VALUE) ts = f->pts;
    *known = ts != AV_NOPTS_VALUE;
    if (*known) return ts_to_s(v, ts);
    /* no time stamp: the frame after the last one (only meaningful when decoding forward) */
    return v->have_time ? v->cur_time + 1.0 / v->info.fps : (double)v->seq_frames / v->info.fps;
}

/* Decodes forward to the first frame at or after t - tol: FOUND (in v->frame), END (the
   stream ended or broke), PAST (just after a seek, the first frame is past the target:
   the seek missed). < 0: error. */
static int decode_to(cored_video *v, double t, double tol, cored_error *err)
{
    for (;;) {
        int r = avcodec_receive_frame(v->dec, v->frame);
        if (r == 0) {
            if (++v->stats.decoded > v->decode_budget) {
                av_frame_unref(v->frame);
                damage(v, "decode budget exceeded");
                return END;
            }
            v->bad_run = 0;
            int known;
            double ft = frame_time(v, v->frame, &known);
            v->seq_frames++;
            int first = v->after_seek;
            v->after_seek = 0;
            if (first && (!known || ft > t + tol)) {
                v->untimed_after_seek = !known;
                av_frame_unref(v->frame);
                return PAST;
            }
            if (v->frame->flags & AV_FRAME_FLAG_CORRUPT) {
                av_frame_unref(v->frame); /* e.g. references lost after a seek: never returned */
                continue;
            }
            v->have_time = 1;
            v->cur_time = ft;
            if (ft >= t - tol) return FOUND;
            av_frame_unref(v->frame);
            continue;
        }
        if (r == AVERROR_EOF) return END;
        if (r != AVERROR(EAGAIN)) {
            v->stats.bad_packets++;
            if (++v->bad_run > MAX_BAD_RUN) {
                damage(v, "undecodable data");
                return END;
            }
            continue;
        }
        if (v->eof_sent) return END;
        r = read_packet(v);
        if (r == -2) return CORED_FAIL(err, CORED_E_IO, "%s: read failed: %s", v->name, strerror(v->io_errno));
        if (r <= 0) {
            avcodec_send_packet(v->dec, NULL); /* drain what the decoder holds */
            v->eof_sent = 1;
            continue;
        }
        /* A frame that nothing references and that is shown before the target can be
           skipped (B-frames, mostly): it cannot be the answer. */
        int64_t pts = v->pkt->pts;
        v->dec->skip_frame = pts != AV_NOPTS_VALUE && ts_to_s(v, pts) < t - tol ? AVDISCARD_NONREF : AVDISCARD_DEFAULT;
        av_last[0] = 0;
        r = avcodec_send_packet(v->dec, v->pkt);
        av_packet_unref(v->pkt);
        if (r == AVERROR(ENOMEM)) return CORED_FAIL(err, CORED_E_NOMEM, "%s: out of memory decoding", v->name);
        if (r < 0) {
            v->stats.bad_packets++;
            if (++v->bad_run > MAX_BAD_RUN) {
                damage(v, "undecodable data");
                avcodec_send_packet(v->dec, NULL);
                v->eof_sent = 1;
            }
        }
    }
}

static int do_seek(cored_video *v, double t)
{
    int64_t ts = t <= 0 ? v->start_pts : s_to_ts(v, t);
    v->stats.seeks++;
    int r = av_seek_frame(v->fmt, v->si, ts, AVSEEK_FLAG_BACKWARD);
    avcodec_flush_buffers(v->dec);
    v->eof_sent = 0;
    v->after_seek = 1;
    v->untimed_after_seek = 0;
    v->pos_last = -1;
    v->stalled = 0;
    return r;
}

/* Reopens the file and decodes forward from its start from now on. */
static int go_sequential(cored_video *v, cored_error *err)
{
    v->stats.reopened++;
    v->stats.sequential = 1;
    int rc = open_av(v, err);
    return rc ? rc : DECODE;
}

/* Positions the demuxer for the target time t: seeks when the keyframe before t lies
   ahead of what is decoded (decoding forward is then slower), else leaves it. DECODE: go
   on decoding forward; FOUND or END: it decoded up to the target already (after a seek,
   to see where it landed); < 0: error. A seek that lands past the target is retried
   further back, then given up for decoding forward from the start of the file. */
static int position_for(cored_video *v, double t, double tol, cored_error *err)
{
    if (v->stats.sequential) return DECODE;
    AVStream *st = v->fmt->streams[v->si];
    double here = v->have_time ? v->cur_time : 0;
    int64_t ts = s_to_ts(v, t - tol);
    const AVIndexEntry *e = avformat_index_get_entry_from_timestamp(st, ts, AVSEEK_FLAG_BACKWARD);
    /* The index may be partial (Matroska without cues read yet, AVI without idx1, generic
       indexes built while reading): its last entry says nothing of keyframes beyond it. */
    int n = avformat_index_get_entries_count(st);
    int last = e && n > 0 && e == avformat_index_get_entry(st, n - 1);
    double kt = e ? ts_to_s(v, e->timestamp) : 0;
    int seek;
    if (e && (e->flags & AVINDEX_KEYFRAME) && (!last || kt > here + tol))
        seek = kt > here + tol;
    else
        seek = t - here > SEEK_GAP_S;
    if (!seek) return DECODE;
    for (int attempt = 0;; attempt++) {
        double at = attempt == 0 ? t - tol : t - tol - SEEK_GAP_S * (double)(1 << (2 * attempt));
        if (attempt > MAX_SEEK_RETRIES || do_seek(v, at > 0 ? at : 0) < 0) return go_sequential(v, err);
        /* Peek: decode up to the target to see where the seek landed. */
        int r = decode_to(v, t, tol, err);
        if (r < 0) return r;
        if (r == PAST && at > 0 && !v->untimed_after_seek) continue;
        if (r == PAST) return go_sequential(v, err);
        return r; /* FOUND (v->frame holds the answer) or END */
    }
}

/* ---------------------------------------------------------------- output */

static int grow(uint8_t **p, size_t *cap, size_t bytes)
{
    if (bytes <= *cap) return 0;
    uint8_t *q = cored_alloc(bytes);
    if (!q) return -1;
    cored_free(*p);
    *p = q;
    *cap = bytes;
    return 0;
}

static int convert(cored_video *v, cored_video_frame *out, cored_error *err)
{
    AVFrame *f = v->frame;
    int w = f->width, h = f->height, rc;
    if (w <= 0 || h <= 0) return CORED_FAIL(err, CORED_E_FORMAT, "%s: decoded a frame of %dx%d", v->name, w, h);
    if ((rc = check_size(v, w, h, "a decoded frame", err))) return rc;
    size_t bytes = (size_t)w * (size_t)h * 3;
    if (grow(&v->rgb, &v->rgb_cap, bytes))
        return CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot allocate %zu bytes for a frame", v->name, bytes);
    int fmt = f->format, full = f->color_range == AVCOL_RANGE_JPEG;
    switch (fmt) { /* the deprecated full-range formats: the same layout, range told apart */
    case AV_PIX_FMT_YUVJ420P: fmt = AV_PIX_FMT_YUV420P; full = 1; break;
    case AV_PIX_FMT_YUVJ422P: fmt = AV_PIX_FMT_YUV422P; full = 1; break;
    case AV_PIX_FMT_YUVJ444P: fmt = AV_PIX_FMT_YUV444P; full = 1; break;
    case AV_PIX_FMT_YUVJ440P: fmt = AV_PIX_FMT_YUV440P; full = 1; break;
    case AV_PIX_FMT_YUVJ411P: fmt = AV_PIX_FMT_YUV411P; full = 1; break;
    default: break;
    }
    int cs = f->colorspace;
    if (cs == AVCOL_SPC_UNSPECIFIED || cs == AVCOL_SPC_RGB || cs == AVCOL_SPC_RESERVED)
        cs = h >= 720 ? SWS_CS_ITU709 : SWS_CS_ITU601; /* what players assume */
    struct SwsContext *s = sws_getCachedContext(v->sws, w, h, fmt, w, h, AV_PIX_FMT_RGB24,
                                                SWS_BILINEAR | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, NULL, NULL,
                                                NULL);
    if (!s)
        return CORED_FAIL(err, CORED_E_FORMAT, "%s: cannot convert frames of pixel format %s to RGB", v->name,
                          av_get_pix_fmt_name(f->format) ? av_get_pix_fmt_name(f->format) : "?");
    if (s != v->sws || cs != v->sws_cs || full != v->sws_full || w != v->sws_w || h != v->sws_h || fmt != v->sws_fmt) {
        const int *coef = sws_getCoefficients(cs);
        sws_setColorspaceDetails(s, coef, full, sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16);
        v->sws = s;
        v->sws_cs = cs;
        v->sws_full = full;
        v->sws_w = w;
        v->sws_h = h;
        v->sws_fmt = fmt;
    }
    uint8_t *dst[4] = {v->rgb, NULL, NULL, NULL};
    int stride[4] = {w * 3, 0, 0, 0};
    if (sws_scale(s, (const uint8_t *const *)f->data, f->linesize, 0, h, dst, stride) != h)
        return CORED_FAIL(err, CORED_E_FORMAT, "%s: converting a frame to RGB failed", v->name);

    int rot = v->info.rotation;
    out->px = v->rgb;
    out->w = w;
    out->h = h;
    if (rot) {
        if (grow(&v->rot, &v->rot_cap, bytes))
            return CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot allocate %zu bytes for a frame", v->name, bytes);
        int ow = rot == 180 ? w : h, oh = rot == 180 ? h : w;
        const uint8_t *src = v->rgb;
        uint8_t *o = v->rot;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int ox, oy; /* clockwise rotation of (x, y) */
                if (rot == 90) ox = h - 1 - y, oy = x;
                else if (rot == 180) ox = w - 1 - x, oy = h - 1 - y;
                else ox = y, oy = w - 1 - x;
                memcpy(o + ((size_t)oy * ow + ox) * 3, src + ((size_t)y * w + x) * 3, 3);
            }
        out->px = v->rot;
        out->w = ow;
        out->h = oh;
    }
    return CORED_OK;
}

/* ---------------------------------------------------------------- sampling */

/* Counts the video packets without decoding (the file tells neither count nor duration). */
static int count_frames(cored_video *v, cored_error *err)
{
    int64_t n = 0;
    double end = -1; /* seconds: the end of the last packet */
    v->packet_budget = v->stats.packets + v->size / 4 + 4096;
    av_last[0] = 0;
    for (;;) {
        int r = read_packet(v);
        if (r == -2) return CORED_FAIL(err, CORED_E_IO, "%s: read failed: %s", v->name, strerror(v->io_errno));
        if (r <= 0) break;
        n++;
        int64_t ts = v->pkt->pts != AV_NOPTS_VALUE ? v->pkt->pts : v->pkt->dts;
        if (ts != AV_NOPTS_VALUE) {
            double e = ts_to_s(v, ts) + (v->pkt->duration > 0 ? (double)v->pkt->duration * av_q2d(v->tb) : 0);
            if (e > end) end = e;
        }
        av_packet_unref(v->pkt);
    }
    if (n == 0)
        return CORED_FAIL(err, CORED_E_FORMAT, "%s: its video stream holds no readable frame%s%s%s", v->name,
                          v->stop_why ? " (" : "", v->stop_why ? v->stop_why : "", v->stop_why ? ")" : "");
    cored_video_info *in = &v->info;
    in->frame_count = n;
    in->count_source = CORED_VIDEO_COUNT_COUNTED;
    if (end > 0 && end < 1e9) {
        in->duration = end;
        if (in->fps_guessed && in->duration > 0 && n > 1) {
            in->fps = (double)n / in->duration;
            in->fps_guessed = 0;
        }
    }
    if (in->duration <= 0) in->duration = (double)n / in->fps;
    return CORED_OK;
}

static int64_t target_index(const cored_video *v, int64_t k)
{
    double i = v->mode_count ? floor(((double)k + 0.5) * (double)v->count_n / (double)v->count_k)
                             : floor((double)k * v->info.fps / v->rate + 1e-9);
    return i > 9e18 ? (int64_t)9e18 : (int64_t)i;
}

int cored_video_start(cored_video *v, const cored_video_sampling *how, cored_error *err)
{
    if (!v || !how) return CORED_FAIL(err, CORED_E_ARG, "cored_video_start: NULL argument");
    v->started = 0;
    int by_count = how->count > 0, by_rate = how->fps > 0;
    if (by_count == by_rate || how->count < 0 || !(how->fps >= 0 && how->fps <= 1e6) || how->max_frames < 0)
        return CORED_FAIL(err, CORED_E_ARG,
                          "%s: a sampling is a frame count > 0 or a rate > 0 (at most 1e6), not both (count %d, "
                          "fps %g)",
                          v->name, how->count, how->fps);
    memset(&v->stats, 0, sizeof v->stats);
    v->stats.sequential = how->sequential != 0;
    v->stop_why = NULL;
    v->stop_msg[0] = 0;
    v->budget_hit = 0;
    v->byte_budget = v->bytes_read + 32 * (uint64_t)v->size + 64 * MIB;
    v->packet_budget = v->decode_budget = INT64_MAX;
    int rc;
    if (v->dirty) { /* sampled before: from the start again */
        if ((rc = open_av(v, err))) return rc;
        v->stats.reopened++;
    }
    v->dirty = 1;
    if (v->info.count_source == CORED_VIDEO_COUNT_UNKNOWN) {
        v->byte_budget = v->bytes_read + 4 * (uint64_t)v->size + 16 * MIB;
        if ((rc = count_frames(v, err))) return rc;
        /* the sampling run tells about damage on its own */
        v->stats.damaged = 0;
        v->stop_why = NULL;
        v->stop_msg[0] = 0;
        v->budget_hit = 0;
        v->byte_budget = v->bytes_read + 32 * (uint64_t)v->size + 64 * MIB;
        if ((rc = open_av(v, err))) return rc;
        v->stats.reopened++;
    }
    v->mode_count = by_count;
    int64_t n = v->info.frame_count;
    if (by_count) {
        v->count_n = n;
        v->count_k = (int)(how->count < n ? how->count : n);
        v->stats.targets = v->count_k;
    } else {
        v->rate = how->fps;
        int64_t t = INT64_MAX;
        if (v->info.duration > 0) {
            double k = ceil(v->info.duration * v->rate - 1e-9);
            t = k < 1 ? 1 : k > 9e18 ? INT64_MAX : (int64_t)k;
            if (v->rate >= v->info.fps && n > 0) { /* every frame */
                v->rate = v->info.fps;
                t = n;
            }
        }
        if (how->max_frames > 0 && how->max_frames < t) t = how->max_frames;
        v->stats.targets = t;
    }
    v->next_target = 0;
    v->finished = 0;
    /* Budgets: room to read the file once per target (a seek re-reads at worst a whole
       group of pictures), packets and frames in proportion. */
    uint64_t passes = (uint64_t)(v->stats.targets < (1 << 20) ? v->stats.targets : (1 << 20)) + 4;
    v->byte_budget = v->bytes_read + passes * (uint64_t)v->size + 64 * MIB;
    v->packet_budget = v->stats.packets + (int64_t)passes * (v->size / 4 + 4096);
    v->decode_budget = v->stats.decoded + 2 * (int64_t)passes * (v->size / 4 + 4096) + 256;
    v->started = 1;
    return CORED_OK;
}

static void finish(cored_video *v)
{
    if (v->finished) return;
    v->finished = 1;
    const cored_video_info *in = &v->info;
    int short_end = v->next_target < v->stats.targets && v->stats.targets != INT64_MAX;
    double last = v->have_time ? v->cur_time : 0;
    /* Ended before the targets without an error: cut short when the stream's end lies
       well before the duration its header declares (else the count was an estimate). */
    if (!v->stats.damaged && short_end && in->duration > 0 && last + 2.0 / in->fps < 0.95 * in->duration) {
        v->stats.damaged = 1;
        v->stats.damaged_at = last;
        v->stop_why = "the data ends early";
    }
    if (!v->stats.damaged) return;
    char dur[64] = "", tgt[64] = "";
    if (in->duration > 0) snprintf(dur, sizeof dur, " of %.2f s", in->duration);
    if (v->stats.targets != INT64_MAX) snprintf(tgt, sizeof tgt, " of %lld", (long long)v->stats.targets);
    const char *why = v->stop_why ? v->stop_why : "damaged data";
    if (short_end || v->stats.targets == INT64_MAX)
        cored_log(CORED_LOG_WARN,
                  "%s: truncated or damaged video: decoding stopped at %.2f s%s (%s%s%s); %lld%s frames kept",
                  v->name, v->stats.damaged_at, dur, why, v->stop_msg[0] ? ": " : "", v->stop_msg,
                  (long long)v->stats.returned, tgt);
    else
        cored_log(CORED_LOG_WARN, "%s: damaged video: %lld bad packet(s) skipped, the first after %.2f s (%s%s%s)",
                  v->name, (long long)v->stats.bad_packets, v->stats.damaged_at, why, v->stop_msg[0] ? ": " : "",
                  v->stop_msg);
}

int cored_video_next(cored_video *v, cored_video_frame *frame, cored_error *err)
{
    if (!v || !frame) return CORED_FAIL(err, CORED_E_ARG, "cored_video_next: NULL argument");
    if (!v->started) return CORED_FAIL(err, CORED_E_ARG, "%s: cored_video_next before cored_video_start", v->name);
    double fps = v->info.fps, tol = 0.5 / fps;
    while (!v->finished && v->next_target < v->stats.targets) {
        double t = (double)target_index(v, v->next_target) / fps;
        av_frame_unref(v->frame);
        int r = position_for(v, t, tol, err);
        if (r == DECODE) r = decode_to(v, t, tol, err);
        if (r < 0) return r;
        if (r != FOUND) break; /* END (PAST only follows a seek, which position_for handles) */
        double ft = v->cur_time;
        int64_t k = v->next_target;
        while (v->next_target < v->stats.targets && (double)target_index(v, v->next_target) / fps - tol <= ft)
            v->next_target++;
        if (v->next_target == k) v->next_target++; /* cannot happen: the frame is at or after t - tol */
        int rc = convert(v, frame, err);
        av_frame_unref(v->frame);
        if (rc) return rc;
        frame->time = ft;
        frame->index = llround(ft * fps);
        frame->target = (int)(k < INT32_MAX ? k : INT32_MAX);
        v->stats.returned++;
        if (v->stats.returned >= v->stats.targets) finish(v);
        return 1;
    }
    finish(v);
    return 0;
}

/* ---------------------------------------------------------------- all at once */

void cored_video_frames_release(cored_video_frames *f)
{
    if (!f) return;
    for (int i = 0; i < f->n; i++) cored_free(f->frames[i].px);
    cored_free(f->frames);
    memset(f, 0, sizeof *f);
}

int cored_video_read(const char *path, const cored_video_sampling *how, const cored_video_options *opts,
                     cored_video_frames *out, cored_video_info *info, cored_error *err)
{
    if (!out) return CORED_FAIL(err, CORED_E_ARG, "cored_video_read: NULL argument");
    memset(out, 0, sizeof *out);
    cored_video *v;
    int rc = cored_video_open(&v, path, opts, err);
    if (rc) return rc;
    rc = cored_video_start(v, how, err);
    cored_video_frames got = {0};
    int cap = 0;
    cored_video_frame f;
    while (!rc) {
        int r = cored_video_next(v, &f, err);
        if (r < 0) rc = r;
        if (r <= 0) break;
        if (got.n == cap) {
            int ncap = cap ? 2 * cap : 32;
            cored_video_frame *p = cored_realloc(got.frames, (size_t)ncap * sizeof *p);
            if (!p) {
                rc = CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot allocate the frame list", path);
                break;
            }
            got.frames = p;
            cap = ncap;
        }
        size_t bytes = (size_t)f.w * (size_t)f.h * 3;
        cored_video_frame c = f;
        c.px = cored_alloc(bytes);
        if (!c.px) {
            rc = CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot allocate %zu bytes for a frame", path, bytes);
            break;
        }
        memcpy(c.px, f.px, bytes);
        got.frames[got.n++] = c;
    }
    if (!rc) {
        got.damaged = v->stats.damaged;
        if (info) *info = v->info;
        *out = got;
    } else {
        cored_video_frames_release(&got);
    }
    cored_video_close(v);
    return rc;
}
