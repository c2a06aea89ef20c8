// Thin C helpers over libpng's classic API. libpng reports errors with setjmp/longjmp, which Swift
// cannot call, so the setjmp lives here, in static inline C that clang compiles; Swift only sees
// functions that return 0 on success or -1 with a message in `err`.
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

/// Error text from libpng (NUL-terminated).
typedef struct { char msg[256]; } enh_png_err;

typedef struct { const unsigned char *data; size_t size; size_t pos; } enh_png_src;

typedef struct { unsigned char *data; size_t size; size_t cap; int oom; } enh_png_dst;

static void enh_png_error_fn(png_structp png, png_const_charp msg) {
    enh_png_err *e = (enh_png_err *)png_get_error_ptr(png);
    if (e != NULL) { strncpy(e->msg, msg != NULL ? msg : "unknown libpng error", 255); e->msg[255] = 0; }
    png_longjmp(png, 1);
}

static void enh_png_warn_fn(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

static void enh_png_read_fn(png_structp png, png_bytep out, size_t n) {
    enh_png_src *s = (enh_png_src *)png_get_io_ptr(png);
    if (s->size - s->pos < n) { png_error(png, "unexpected end of data (file truncated)"); }
    memcpy(out, s->data + s->pos, n);
    s->pos += n;
}

static void enh_png_write_fn(png_structp png, png_bytep in, size_t n) {
    enh_png_dst *d = (enh_png_dst *)png_get_io_ptr(png);
    if (d->cap - d->size < n) {
        size_t cap = d->cap < 65536 ? 65536 : d->cap;
        while (cap - d->size < n) { cap *= 2; }
        unsigned char *p = (unsigned char *)realloc(d->data, cap);
        if (p == NULL) { d->oom = 1; png_error(png, "out of memory"); }
        d->data = p; d->cap = cap;
    }
    memcpy(d->data + d->size, in, n);
    d->size += n;
}

static void enh_png_flush_fn(png_structp png) { (void)png; }

/// Reads a PNG in memory: without `out`, its header, reporting the size and the layout the decoder will produce
/// (after palette → RGB(A), tRNS → alpha and low-bit gray → 8-bit expansion); with `out`, the pixels (see
/// `enh_png_decode`). One function for both, so the reader is set up once and libpng's longjmp always lands in
/// a live frame. Returns 0 or -1.
static int enh_png_read(const unsigned char *data, size_t size, unsigned *width, unsigned *height, int *channels,
                        int *depth, int *interlaced, unsigned char *out, size_t outSize, size_t stride, enh_png_err *err) {
    enh_png_src src = { data, size, 0 };
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, err, enh_png_error_fn, enh_png_warn_fn);
    if (png == NULL) { strcpy(err->msg, "cannot create PNG reader"); return -1; }
    png_infop info = png_create_info_struct(png);
    if (info == NULL) { png_destroy_read_struct(&png, NULL, NULL); strcpy(err->msg, "cannot create PNG info"); return -1; }
    if (setjmp(png_jmpbuf(png))) { png_destroy_read_struct(&png, &info, NULL); return -1; }
    png_set_read_fn(png, &src, enh_png_read_fn);
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_read_info(png, info);
    if (out == NULL) {
        png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
        int bitDepth = png_get_bit_depth(png, info);
        int colorType = png_get_color_type(png, info);
        int hasTRNS = png_get_valid(png, info, PNG_INFO_tRNS) != 0;
        int ch;
        switch (colorType) {
        case PNG_COLOR_TYPE_GRAY: ch = hasTRNS ? 2 : 1; break;
        case PNG_COLOR_TYPE_GRAY_ALPHA: ch = 2; break;
        case PNG_COLOR_TYPE_PALETTE: ch = hasTRNS ? 4 : 3; break;
        case PNG_COLOR_TYPE_RGB: ch = hasTRNS ? 4 : 3; break;
        default: ch = 4; break;
        }
        *width = w; *height = h; *channels = ch;
        *depth = (bitDepth == 16) ? 16 : 8;
        *interlaced = png_get_interlace_type(png, info) != PNG_INTERLACE_NONE;
        png_destroy_read_struct(&png, &info, NULL);
        return 0;
    }
    png_set_expand(png);
    if (png_get_bit_depth(png, info) == 16) {
        unsigned short probe = 1;
        if (*(unsigned char *)&probe == 1) { png_set_swap(png); }
    }
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    png_uint_32 h = png_get_image_height(png, info);
    size_t rowBytes = png_get_rowbytes(png, info);
    if (rowBytes != stride || (size_t)h * stride > outSize) {
        strcpy(err->msg, "PNG layout differs from its header");
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    for (int p = 0; p < passes; p++) {
        for (png_uint_32 y = 0; y < h; y++) { png_read_row(png, out + (size_t)y * stride, NULL); }
    }
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}

/// Reads the header of a PNG in memory (see `enh_png_read`). Returns 0 or -1.
static inline int enh_png_read_header(const unsigned char *data, size_t size, unsigned *width, unsigned *height,
                                      int *channels, int *depth, int *interlaced, enh_png_err *err) {
    return enh_png_read(data, size, width, height, channels, depth, interlaced, NULL, 0, 0, err);
}

/// Decodes a PNG in memory into `out` (interleaved rows, `stride` bytes each, 16-bit samples in host
/// byte order). The caller sizes `out` from `enh_png_read_header`. No gamma or colour transform is applied.
static inline int enh_png_decode(const unsigned char *data, size_t size, unsigned char *out, size_t outSize,
                                 size_t stride, enh_png_err *err) {
    return enh_png_read(data, size, NULL, NULL, NULL, NULL, NULL, out, outSize, stride, err);
}

/// Encodes interleaved pixels (channels 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA; depth 8 or 16 with
/// samples in host byte order) as PNG. On success `*outData` is a malloc'd buffer the caller frees.
static inline int enh_png_encode(const unsigned char *pixels, unsigned width, unsigned height, int channels,
                                 int depth, int level, unsigned char **outData, size_t *outSize, enh_png_err *err) {
    static const int types[5] = { 0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                  PNG_COLOR_TYPE_RGB_ALPHA };
    if (channels < 1 || channels > 4 || (depth != 8 && depth != 16)) { strcpy(err->msg, "bad layout"); return -1; }
    enh_png_dst *dst = (enh_png_dst *)calloc(1, sizeof(enh_png_dst));
    if (dst == NULL) { strcpy(err->msg, "out of memory"); return -1; }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, err, enh_png_error_fn, enh_png_warn_fn);
    if (png == NULL) { free(dst); strcpy(err->msg, "cannot create PNG writer"); return -1; }
    png_infop info = png_create_info_struct(png);
    if (info == NULL) { png_destroy_write_struct(&png, NULL); free(dst); strcpy(err->msg, "cannot create PNG info"); return -1; }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(dst->data); free(dst);
        return -1;
    }
    png_set_write_fn(png, dst, enh_png_write_fn, enh_png_flush_fn);
    png_set_compression_level(png, level);
    /* At the fastest levels use the Sub filter only (as OpenCV does by default): the adaptive
       filter search costs more than it saves there. */
    if (level <= 1) { png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTER_SUB); }
    png_set_IHDR(png, info, width, height, depth, types[channels], PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    if (depth == 16) {
        unsigned short probe = 1;
        if (*(unsigned char *)&probe == 1) { png_set_swap(png); }
    }
    size_t stride = (size_t)width * (size_t)channels * (size_t)(depth / 8);
    for (unsigned y = 0; y < height; y++) { png_write_row(png, (png_const_bytep)(pixels + (size_t)y * stride)); }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    *outData = dst->data; *outSize = dst->size;
    free(dst);
    return 0;
}
