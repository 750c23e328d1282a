/*
 * media_relay._fastpath: the relay's per-packet work in C, with media_relay/fastpath_py.py as its
 * pure-Python twin (same names, same behaviour; tests/media_relay/test_fastpath.py holds the two
 * to each other byte for byte).
 *
 * Why C: on a small VM the relay is idle between frames (33 ms), so the first packets of every
 * frame run on a cold CPU, and CPython's interpreter touches far more code and data per packet
 * than this loop. Everything that decides (SDP, key frames, rebasing, NACKs, statistics beyond
 * counters) stays in Python; this file only copies, rewrites, protects and sends.
 *
 * Objects:
 *   Link    one participant's transport: the SRTP send context (an srtp_t owned by pylibsrtp,
 *           kept alive by holding its Session) and the UDP socket + peer address to send to.
 *   Output  one forwarded stream to one subscriber: outgoing SSRC, sequence/timestamp offsets,
 *           MID, accepted payload types, counters, and its Link.
 *   fanout(data, header, mid_at, outputs, now) sends one plain RTP packet to every Output that
 *           is in steady state for it and marks the others `pending` for the Python slow path.
 *
 * libsrtp is reached through the function pointers pylibsrtp exports (set_srtp), so the relay
 * uses the very library copy, and contexts, that aiortc's DTLS transport created.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

/* srtp_err_status_t srtp_protect(srtp_t ctx, void *rtp_hdr, int *len_ptr) (libsrtp 2) */
typedef int (*srtp_function)(void *ctx, void *packet, int *length);

static srtp_function srtp_protect_fn = NULL;
static srtp_function srtp_unprotect_fn = NULL;
static srtp_function srtp_protect_rtcp_fn = NULL; /* same signature (libsrtp 2) */

/* libsrtp works in place: the largest datagram plus its authentication trailer */
#define BUFFER_SIZE 1600
#define SRTP_TRAILER 144
#define MAX_PLAIN (BUFFER_SIZE - SRTP_TRAILER)
#define MAX_MID 255
/* transport-wide sequence numbers kept between two drains (fastpath_py.TRANSPORT_CC_CAPACITY) */
#define TRANSPORT_CC_CAPACITY 1024

/* RtpHeader (media_relay/packets.py) field positions */
enum {
    H_MARKER = 0,
    H_PAYLOAD_TYPE,
    H_SEQ,
    H_TIMESTAMP,
    H_SSRC,
    H_EXT_PROFILE,
    H_EXT_START,
    H_EXT_END,
    H_PAYLOAD_START,
    H_PAYLOAD_END,
    H_FIELDS
};

typedef struct {
    int marker;
    int payload_type;
    uint32_t seq;
    uint32_t timestamp;
    uint32_t ssrc;
    int bede; /* one-byte header extensions (RFC 8285 §4.2) */
    Py_ssize_t payload_length;
    Py_ssize_t mid_offset; /* 0: the packet carries no MID element */
    Py_ssize_t mid_length;
} PacketInfo;

/* ------------------------------------------------------------------------------------ Link */

typedef struct {
    PyObject_HEAD
    void *ctx;
    PyObject *session; /* keeps ctx alive */
    PyObject *sock;    /* keeps fd open (the owner unbinds before closing it) */
    int fd;
    struct sockaddr_storage address;
    socklen_t address_length;
    unsigned long long send_errors;
    unsigned char buffer[BUFFER_SIZE];
} LinkObject;

static PyTypeObject LinkType;

static int link_traverse(LinkObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->session);
    Py_VISIT(self->sock);
    return 0;
}

static int link_clear(LinkObject *self) {
    self->fd = -1;
    self->ctx = NULL;
    Py_CLEAR(self->session);
    Py_CLEAR(self->sock);
    return 0;
}

static void link_dealloc(LinkObject *self) {
    PyObject_GC_UnTrack(self);
    link_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *link_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    LinkObject *self = (LinkObject *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->fd = -1;
    }
    return (PyObject *)self;
}

static int parse_address(PyObject *address, struct sockaddr_storage *out, socklen_t *length) {
    const char *host;
    int port;
    if (!PyArg_ParseTuple(address, "si", &host, &port)) {
        /* IPv6 tuples carry flowinfo and scope id as well */
        PyErr_Clear();
        unsigned int flowinfo = 0, scope = 0;
        if (!PyArg_ParseTuple(address, "si|II", &host, &port, &flowinfo, &scope)) {
            return -1;
        }
    }
    if (port < 0 || port > 65535) {
        PyErr_SetString(PyExc_ValueError, "port out of range");
        return -1;
    }
    memset(out, 0, sizeof(*out));
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *length = sizeof(*v4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *length = sizeof(*v6);
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "not a numeric IP address: %s", host);
    return -1;
}

static PyObject *link_bind(LinkObject *self, PyObject *args) {
    unsigned long long ctx;
    PyObject *session, *sock, *address;
    if (!PyArg_ParseTuple(args, "KOOO", &ctx, &session, &sock, &address)) {
        return NULL;
    }
    if (ctx == 0) {
        PyErr_SetString(PyExc_ValueError, "no SRTP context");
        return NULL;
    }
    struct sockaddr_storage parsed;
    socklen_t parsed_length = 0;
    if (parse_address(address, &parsed, &parsed_length) < 0) {
        return NULL;
    }
    int fd = PyObject_AsFileDescriptor(sock);
    if (fd < 0) {
        return NULL;
    }
    link_clear(self);
    Py_INCREF(session);
    self->session = session;
    Py_INCREF(sock);
    self->sock = sock;
    self->ctx = (void *)(uintptr_t)ctx;
    self->fd = fd;
    self->address = parsed;
    self->address_length = parsed_length;
    Py_RETURN_NONE;
}

static PyObject *link_unbind(LinkObject *self, PyObject *unused) {
    link_clear(self);
    Py_RETURN_NONE;
}

/* protect the first `size` bytes of self->buffer and send them: 1 sent, 0 failed (counted) */
static int link_send_buffer(LinkObject *self, Py_ssize_t size) {
    int length = (int)size;
    if (srtp_protect_fn(self->ctx, self->buffer, &length) != 0) {
        self->send_errors++;
        return 0;
    }
    ssize_t sent = sendto(self->fd, self->buffer, (size_t)length, 0,
                          (struct sockaddr *)&self->address, self->address_length);
    if (sent < 0) { /* e.g. a full socket buffer: a lost packet, as on the wire */
        self->send_errors++;
        return 0;
    }
    return 1;
}

static PyObject *link_send(LinkObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    long result;
    if (self->fd < 0 || srtp_protect_fn == NULL) {
        result = -1;
    } else if (view.len > MAX_PLAIN) {
        self->send_errors++;
        result = 0;
    } else {
        memcpy(self->buffer, view.buf, (size_t)view.len);
        result = link_send_buffer(self, view.len);
    }
    PyBuffer_Release(&view);
    return PyLong_FromLong(result);
}

/* Link.send_rtcp(packet): protect plain RTCP (SRTCP) and send it, as Link.send does RTP */
static PyObject *link_send_rtcp(LinkObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    long result = 1;
    if (self->fd < 0 || srtp_protect_rtcp_fn == NULL) {
        result = -1;
    } else if (view.len > MAX_PLAIN) {
        self->send_errors++;
        result = 0;
    } else {
        memcpy(self->buffer, view.buf, (size_t)view.len);
        int length = (int)view.len;
        if (srtp_protect_rtcp_fn(self->ctx, self->buffer, &length) != 0 ||
            sendto(self->fd, self->buffer, (size_t)length, 0, (struct sockaddr *)&self->address,
                   self->address_length) < 0) {
            self->send_errors++;
            result = 0;
        }
    }
    PyBuffer_Release(&view);
    return PyLong_FromLong(result);
}

static PyObject *link_get_bound(LinkObject *self, void *closure) {
    return PyBool_FromLong(self->fd >= 0);
}

static PyObject *link_get_send_errors(LinkObject *self, void *closure) {
    return PyLong_FromUnsignedLongLong(self->send_errors);
}

static int link_set_send_errors(LinkObject *self, PyObject *value, void *closure) {
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete");
        return -1;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(value);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        return -1;
    }
    self->send_errors = v;
    return 0;
}

static PyMethodDef link_methods[] = {
    {"bind", (PyCFunction)link_bind, METH_VARARGS,
     "bind(ctx, session, sock, address): send with srtp_t `ctx` (kept alive by `session`) "
     "on `sock` to `address`"},
    {"unbind", (PyCFunction)link_unbind, METH_NOARGS, "forget the context and the socket"},
    {"send", (PyCFunction)link_send, METH_O,
     "send(packet) -> 1 sent, 0 failed (counted), -1 not bound: protect and send plain RTP"},
    {"send_rtcp", (PyCFunction)link_send_rtcp, METH_O,
     "send_rtcp(packet) -> 1 sent, 0 failed (counted), -1 not bound: the same for RTCP"},
    {NULL}};

static PyGetSetDef link_getset[] = {
    {"bound", (getter)link_get_bound, NULL, "a context and a socket are set", NULL},
    {"send_errors", (getter)link_get_send_errors, (setter)link_set_send_errors,
     "packets that failed to protect or send", NULL},
    {NULL}};

static PyTypeObject LinkType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "media_relay._fastpath.Link",
    .tp_basicsize = sizeof(LinkObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "One participant's SRTP send context and UDP destination.",
    .tp_new = link_new,
    .tp_dealloc = (destructor)link_dealloc,
    .tp_traverse = (traverseproc)link_traverse,
    .tp_clear = (inquiry)link_clear,
    .tp_methods = link_methods,
    .tp_getset = link_getset,
};

/* ---------------------------------------------------------------------------------- Output */

typedef struct {
    PyObject_HEAD
    LinkObject *link; /* NULL: not connected */
    uint32_t ssrc;
    uint32_t in_ssrc;
    int has_in_ssrc;
    uint16_t seq_offset;
    uint32_t ts_offset;
    int enabled;
    int pending;
    unsigned char mid[MAX_MID];
    Py_ssize_t mid_length;
    int hidden_extension_id;
    uint64_t payload_types[2];
    long last_seq; /* -1: nothing sent yet */
    uint32_t last_ts;
    double last_sent_at;
    unsigned long long packets;
    unsigned long long bytes;
    unsigned long long payload_bytes;
    unsigned long long dropped_codec;
} OutputObject;

static PyTypeObject OutputType;

static int output_traverse(OutputObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->link);
    return 0;
}

static int output_clear(OutputObject *self) {
    Py_CLEAR(self->link);
    return 0;
}

static void output_dealloc(OutputObject *self) {
    PyObject_GC_UnTrack(self);
    output_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int output_init(OutputObject *self, PyObject *args, PyObject *kwds) {
    static char *names[] = {"ssrc", NULL};
    unsigned long ssrc;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "k", names, &ssrc)) {
        return -1;
    }
    if (ssrc > 0xFFFFFFFFUL) {
        PyErr_SetString(PyExc_ValueError, "ssrc out of range");
        return -1;
    }
    output_clear(self);
    self->ssrc = (uint32_t)ssrc;
    self->has_in_ssrc = 0;
    self->last_seq = -1;
    self->hidden_extension_id = 14;
    self->mid_length = 0;
    return 0;
}

/* header tuple -> PacketInfo; -1 with an exception when it is not a well-formed RtpHeader */
static int read_header(PyObject *header, PyObject *mid_at, Py_ssize_t size, PacketInfo *info) {
    if (!PyTuple_Check(header) || PyTuple_GET_SIZE(header) != H_FIELDS) {
        PyErr_SetString(PyExc_TypeError, "header must be an RtpHeader");
        return -1;
    }
    long values[H_FIELDS];
    for (int i = 0; i < H_FIELDS; i++) {
        values[i] = PyLong_AsLong(PyTuple_GET_ITEM(header, i));
        if (values[i] == -1 && PyErr_Occurred()) {
            return -1;
        }
    }
    if (values[H_PAYLOAD_TYPE] < 0 || values[H_PAYLOAD_TYPE] > 127 || values[H_SEQ] < 0 ||
        values[H_SEQ] > 0xFFFF || values[H_PAYLOAD_START] < 12 ||
        values[H_PAYLOAD_END] < values[H_PAYLOAD_START] || values[H_PAYLOAD_END] > size) {
        PyErr_SetString(PyExc_ValueError, "header does not describe this packet");
        return -1;
    }
    info->marker = values[H_MARKER] != 0;
    info->payload_type = (int)values[H_PAYLOAD_TYPE];
    info->seq = (uint32_t)values[H_SEQ];
    info->timestamp = (uint32_t)(unsigned long)values[H_TIMESTAMP];
    info->ssrc = (uint32_t)(unsigned long)values[H_SSRC];
    info->bede = values[H_EXT_PROFILE] == 0xBEDE;
    info->payload_length = values[H_PAYLOAD_END] - values[H_PAYLOAD_START];
    info->mid_offset = 0;
    info->mid_length = 0;
    if (mid_at != Py_None) {
        if (!PyTuple_Check(mid_at) || PyTuple_GET_SIZE(mid_at) != 2) {
            PyErr_SetString(PyExc_TypeError, "mid_at must be (offset, length) or None");
            return -1;
        }
        long offset = PyLong_AsLong(PyTuple_GET_ITEM(mid_at, 0));
        long length = PyLong_AsLong(PyTuple_GET_ITEM(mid_at, 1));
        if (PyErr_Occurred()) {
            return -1;
        }
        /* the element header sits 1 (one-byte form) or 2 (two-byte form) bytes before it */
        if (offset < 14 || length < 0 || offset + length > size) {
            PyErr_SetString(PyExc_ValueError, "mid_at outside the packet");
            return -1;
        }
        info->mid_offset = offset;
        info->mid_length = length;
    }
    return 0;
}

static inline void put16(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static inline void put32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* copy `data` into `out` rewritten for this output and account for it (packets.rewrite_rtp,
 * packets.retag_extension); `retransmission` leaves the stream's latest position alone */
static void output_rewrite(OutputObject *self, const unsigned char *data, Py_ssize_t size,
                           const PacketInfo *info, double now, int retransmission,
                           unsigned char *out) {
    memcpy(out, data, (size_t)size);
    uint32_t seq = (info->seq + self->seq_offset) & 0xFFFF;
    uint32_t ts = info->timestamp + self->ts_offset;
    out[1] = (unsigned char)(info->payload_type | (info->marker ? 0x80 : 0));
    put16(out + 2, seq);
    put32(out + 4, ts);
    put32(out + 8, self->ssrc);
    if (info->mid_offset) {
        if (info->mid_length == self->mid_length) {
            memcpy(out + info->mid_offset, self->mid, (size_t)info->mid_length);
        } else if (info->bede) {
            /* an ID the subscriber never negotiated: it ignores the element */
            unsigned char *element = out + info->mid_offset - 1;
            *element = (unsigned char)((self->hidden_extension_id << 4) | (*element & 0x0F));
        } else {
            out[info->mid_offset - 2] = (unsigned char)self->hidden_extension_id;
        }
    }
    if (!retransmission &&
        (self->last_seq < 0 ||
         ((uint32_t)seq != (uint32_t)self->last_seq &&
          ((seq - (uint32_t)self->last_seq) & 0xFFFF) < 0x8000))) {
        self->last_seq = (long)seq;
        self->last_ts = ts;
        self->last_sent_at = now;
    }
    self->packets++;
    self->bytes += (unsigned long long)size;
    self->payload_bytes += (unsigned long long)info->payload_length;
}

static int link_ready(LinkObject *link) {
    return link != NULL && link->fd >= 0 && srtp_protect_fn != NULL;
}

/* the arguments of Output.send and Output.rewrite: (data, header, mid_at, now, retransmission);
 * on success `view` holds the packet and must be released */
typedef struct {
    Py_buffer view;
    PacketInfo info;
    double now;
    int retransmission;
} SendArgs;

static int read_send_args(const char *name, PyObject *const *args, Py_ssize_t nargs,
                          SendArgs *out) {
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError, "%s(data, header, mid_at, now, retransmission)", name);
        return -1;
    }
    if (PyObject_GetBuffer(args[0], &out->view, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    out->now = PyFloat_AsDouble(args[3]);
    out->retransmission = PyObject_IsTrue(args[4]);
    if ((out->now == -1.0 && PyErr_Occurred()) || out->retransmission < 0 ||
        read_header(args[1], args[2], out->view.len, &out->info) < 0) {
        PyBuffer_Release(&out->view);
        return -1;
    }
    return 0;
}

/* Output.send(data, header, mid_at, now, retransmission) -> 1 sent, 0 failed, -1 not bound */
static PyObject *output_send(OutputObject *self, PyObject *const *args, Py_ssize_t nargs) {
    LinkObject *link = self->link;
    if (nargs == 5 && !link_ready(link)) {
        return PyLong_FromLong(-1);
    }
    SendArgs a;
    if (read_send_args("send", args, nargs, &a) < 0) {
        return NULL;
    }
    long result = 0;
    if (a.view.len > MAX_PLAIN) {
        link->send_errors++;
    } else {
        output_rewrite(self, a.view.buf, a.view.len, &a.info, a.now, a.retransmission,
                       link->buffer);
        result = link_send_buffer(link, a.view.len);
    }
    PyBuffer_Release(&a.view);
    return PyLong_FromLong(result);
}

/* Output.rewrite(data, header, mid_at, now, retransmission) -> bytearray, for the slow path */
static PyObject *output_rewrite_py(OutputObject *self, PyObject *const *args, Py_ssize_t nargs) {
    SendArgs a;
    if (read_send_args("rewrite", args, nargs, &a) < 0) {
        return NULL;
    }
    PyObject *result = PyByteArray_FromStringAndSize(NULL, a.view.len);
    if (result != NULL) {
        output_rewrite(self, a.view.buf, a.view.len, &a.info, a.now, a.retransmission,
                       (unsigned char *)PyByteArray_AS_STRING(result));
    }
    PyBuffer_Release(&a.view);
    return result;
}

static int read_payload_types(PyObject *iterable, uint64_t mask[2]) {
    PyObject *iterator = PyObject_GetIter(iterable);
    if (iterator == NULL) {
        return -1;
    }
    PyObject *item;
    while ((item = PyIter_Next(iterator)) != NULL) {
        long pt = PyLong_AsLong(item);
        Py_DECREF(item);
        if (pt == -1 && PyErr_Occurred()) {
            Py_DECREF(iterator);
            return -1;
        }
        if (pt >= 0 && pt < 128) { /* RTP payload types are 7 bits; others can never match */
            mask[pt >> 6] |= (uint64_t)1 << (pt & 63);
        }
    }
    Py_DECREF(iterator);
    return PyErr_Occurred() ? -1 : 0;
}

static PyObject *output_set_payload_types(OutputObject *self, PyObject *iterable) {
    uint64_t mask[2] = {0, 0};
    if (read_payload_types(iterable, mask) < 0) {
        return NULL;
    }
    self->payload_types[0] = mask[0];
    self->payload_types[1] = mask[1];
    Py_RETURN_NONE;
}

static PyObject *output_accepts(OutputObject *self, PyObject *arg) {
    long pt = PyLong_AsLong(arg);
    if (pt == -1 && PyErr_Occurred()) {
        return NULL;
    }
    int yes = pt >= 0 && pt < 128 && (self->payload_types[pt >> 6] >> (pt & 63)) & 1;
    return PyBool_FromLong(yes);
}

/* -- attributes */

static int set_uint(PyObject *value, unsigned long long max, unsigned long long *out) {
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete");
        return -1;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(value);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        return -1;
    }
    if (v > max) {
        PyErr_SetString(PyExc_ValueError, "value out of range");
        return -1;
    }
    *out = v;
    return 0;
}

#define UINT_PROPERTY(name, field, max, ctype)                                                 \
    static PyObject *output_get_##name(OutputObject *self, void *c) {                          \
        return PyLong_FromUnsignedLongLong((unsigned long long)self->field);                   \
    }                                                                                          \
    static int output_set_##name(OutputObject *self, PyObject *value, void *c) {               \
        unsigned long long v;                                                                  \
        if (set_uint(value, max, &v) < 0) {                                                    \
            return -1;                                                                         \
        }                                                                                      \
        self->field = (ctype)v;                                                                \
        return 0;                                                                              \
    }

UINT_PROPERTY(ssrc, ssrc, 0xFFFFFFFFULL, uint32_t)
UINT_PROPERTY(seq_offset, seq_offset, 0xFFFFULL, uint16_t)
UINT_PROPERTY(ts_offset, ts_offset, 0xFFFFFFFFULL, uint32_t)
UINT_PROPERTY(last_ts, last_ts, 0xFFFFFFFFULL, uint32_t)
UINT_PROPERTY(hidden_extension_id, hidden_extension_id, 14ULL, int)
UINT_PROPERTY(packets, packets, ~0ULL, unsigned long long)
UINT_PROPERTY(bytes, bytes, ~0ULL, unsigned long long)
UINT_PROPERTY(payload_bytes, payload_bytes, ~0ULL, unsigned long long)
UINT_PROPERTY(dropped_codec, dropped_codec, ~0ULL, unsigned long long)

static PyObject *output_get_in_ssrc(OutputObject *self, void *c) {
    if (!self->has_in_ssrc) {
        Py_RETURN_NONE;
    }
    return PyLong_FromUnsignedLong(self->in_ssrc);
}

static int output_set_in_ssrc(OutputObject *self, PyObject *value, void *c) {
    if (value == Py_None) {
        self->has_in_ssrc = 0;
        return 0;
    }
    unsigned long long v;
    if (set_uint(value, 0xFFFFFFFFULL, &v) < 0) {
        return -1;
    }
    self->in_ssrc = (uint32_t)v;
    self->has_in_ssrc = 1;
    return 0;
}

static PyObject *output_get_last_seq(OutputObject *self, void *c) {
    if (self->last_seq < 0) {
        Py_RETURN_NONE;
    }
    return PyLong_FromLong(self->last_seq);
}

static int output_set_last_seq(OutputObject *self, PyObject *value, void *c) {
    if (value == Py_None) {
        self->last_seq = -1;
        return 0;
    }
    unsigned long long v;
    if (set_uint(value, 0xFFFFULL, &v) < 0) {
        return -1;
    }
    self->last_seq = (long)v;
    return 0;
}

static PyObject *output_get_last_sent_at(OutputObject *self, void *c) {
    return PyFloat_FromDouble(self->last_sent_at);
}

static int output_set_last_sent_at(OutputObject *self, PyObject *value, void *c) {
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete");
        return -1;
    }
    double v = PyFloat_AsDouble(value);
    if (v == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    self->last_sent_at = v;
    return 0;
}

static PyObject *output_get_mid(OutputObject *self, void *c) {
    return PyBytes_FromStringAndSize((const char *)self->mid, self->mid_length);
}

static int output_set_mid(OutputObject *self, PyObject *value, void *c) {
    if (value == NULL || !PyBytes_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "mid must be bytes");
        return -1;
    }
    Py_ssize_t length = PyBytes_GET_SIZE(value);
    if (length > MAX_MID) {
        PyErr_SetString(PyExc_ValueError, "mid longer than 255 bytes");
        return -1;
    }
    memcpy(self->mid, PyBytes_AS_STRING(value), (size_t)length);
    self->mid_length = length;
    return 0;
}

static PyObject *output_get_enabled(OutputObject *self, void *c) {
    return PyBool_FromLong(self->enabled);
}

static int output_set_enabled(OutputObject *self, PyObject *value, void *c) {
    int v = value == NULL ? -1 : PyObject_IsTrue(value);
    if (v < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_AttributeError, "cannot delete");
        }
        return -1;
    }
    self->enabled = v;
    return 0;
}

static PyObject *output_get_pending(OutputObject *self, void *c) {
    return PyBool_FromLong(self->pending);
}

static PyObject *output_get_link(OutputObject *self, void *c) {
    if (self->link == NULL) {
        Py_RETURN_NONE;
    }
    Py_INCREF(self->link);
    return (PyObject *)self->link;
}

static int output_set_link(OutputObject *self, PyObject *value, void *c) {
    if (value == NULL || (value != Py_None && !PyObject_TypeCheck(value, &LinkType))) {
        PyErr_SetString(PyExc_TypeError, "link must be a Link or None");
        return -1;
    }
    LinkObject *old = self->link;
    if (value == Py_None) {
        self->link = NULL;
    } else {
        Py_INCREF(value);
        self->link = (LinkObject *)value;
    }
    Py_XDECREF(old);
    return 0;
}

#define PROPERTY(name, doc) {#name, (getter)output_get_##name, (setter)output_set_##name, doc, NULL}

static PyGetSetDef output_getset[] = {
    PROPERTY(ssrc, "outgoing SSRC"),
    PROPERTY(in_ssrc, "the publisher SSRC the offsets are based on, or None"),
    PROPERTY(seq_offset, "added to the publisher's sequence numbers (mod 2^16)"),
    PROPERTY(ts_offset, "added to the publisher's timestamps (mod 2^32)"),
    PROPERTY(mid, "the subscriber's MID for this stream"),
    PROPERTY(hidden_extension_id, "ID a MID of another length is moved to"),
    PROPERTY(enabled, "steady state: fanout may send without asking Python"),
    {"pending", (getter)output_get_pending, NULL, "the last fanout left this output to Python",
     NULL},
    PROPERTY(link, "the subscriber's Link, or None"),
    PROPERTY(last_seq, "latest outgoing sequence number, or None"),
    PROPERTY(last_ts, "timestamp of the latest outgoing packet"),
    PROPERTY(last_sent_at, "monotonic time of the latest outgoing packet"),
    PROPERTY(packets, "packets handed to the link"),
    PROPERTY(bytes, "plain RTP bytes handed to the link"),
    PROPERTY(payload_bytes, "payload bytes (sender reports)"),
    PROPERTY(dropped_codec, "packets the subscriber did not negotiate the payload type of"),
    {NULL}};

static PyMethodDef output_methods[] = {
    {"send", (PyCFunction)(void (*)(void))output_send, METH_FASTCALL,
     "send(data, header, mid_at, now, retransmission) -> 1 sent, 0 failed, -1 not bound"},
    {"rewrite", (PyCFunction)(void (*)(void))output_rewrite_py, METH_FASTCALL,
     "rewrite(data, header, mid_at, now, retransmission) -> bytearray (accounted)"},
    {"set_payload_types", (PyCFunction)output_set_payload_types, METH_O,
     "set_payload_types(iterable of int): the payload types the subscriber accepted"},
    {"accepts", (PyCFunction)output_accepts, METH_O, "accepts(pt) -> bool"},
    {NULL}};

static PyTypeObject OutputType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "media_relay._fastpath.Output",
    .tp_basicsize = sizeof(OutputObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "One forwarded stream to one subscriber: Output(ssrc).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)output_init,
    .tp_dealloc = (destructor)output_dealloc,
    .tp_traverse = (traverseproc)output_traverse,
    .tp_clear = (inquiry)output_clear,
    .tp_methods = output_methods,
    .tp_getset = output_getset,
};

/* ---------------------------------------------------------------------------------- module */

/* send `data` to every output in steady state for it; returns how many were left pending.
 * `outputs` must be a tuple of Output (checked by the callers). */
static long fanout_core(const unsigned char *data, Py_ssize_t size, const PacketInfo *info,
                        PyObject *outputs, double now) {
    Py_ssize_t count = PyTuple_GET_SIZE(outputs);
    long pending = 0;
    int too_big = size > MAX_PLAIN;
    for (Py_ssize_t i = 0; i < count; i++) {
        OutputObject *out = (OutputObject *)PyTuple_GET_ITEM(outputs, i);
        LinkObject *link = out->link;
        if (!out->enabled || !out->has_in_ssrc || out->in_ssrc != info->ssrc ||
            !link_ready(link)) {
            out->pending = 1;
            pending++;
            continue;
        }
        out->pending = 0;
        if (!((out->payload_types[info->payload_type >> 6] >> (info->payload_type & 63)) & 1)) {
            out->dropped_codec++;
            continue;
        }
        if (too_big) {
            link->send_errors++;
            continue;
        }
        output_rewrite(out, data, size, info, now, 0, link->buffer);
        link_send_buffer(link, size);
    }
    return pending;
}

static int check_outputs(PyObject *outputs) {
    if (!PyTuple_Check(outputs)) {
        PyErr_SetString(PyExc_TypeError, "outputs must be a tuple of Output");
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(outputs); i++) {
        if (!PyObject_TypeCheck(PyTuple_GET_ITEM(outputs, i), &OutputType)) {
            PyErr_SetString(PyExc_TypeError, "outputs must be a tuple of Output");
            return -1;
        }
    }
    return 0;
}

/* fanout(data, header, mid_at, outputs, now) -> number of outputs left pending */
static PyObject *fanout(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "fanout(data, header, mid_at, outputs, now)");
        return NULL;
    }
    if (check_outputs(args[3]) < 0) {
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    PacketInfo info;
    double now = PyFloat_AsDouble(args[4]);
    if ((now == -1.0 && PyErr_Occurred()) || read_header(args[1], args[2], view.len, &info) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    long pending = fanout_core(view.buf, view.len, &info, args[3], now);
    PyBuffer_Release(&view);
    return PyLong_FromLong(pending);
}

/* ------------------------------------------------------------------ parsing (packets.py) */

typedef struct {
    int first;
    int second;
    uint32_t seq;
    uint32_t timestamp;
    uint32_t ssrc;
    unsigned int ext_profile;
    Py_ssize_t ext_start;
    Py_ssize_t ext_end;
    Py_ssize_t payload_start;
    Py_ssize_t payload_end;
} Parsed;

static inline uint32_t get16(const unsigned char *p) { return ((uint32_t)p[0] << 8) | p[1]; }

static inline uint32_t get32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* packets.parse_rtp_header: 0, or -1 when malformed */
static int parse_rtp(const unsigned char *d, Py_ssize_t size, Parsed *p) {
    if (size < 12) {
        return -1;
    }
    p->first = d[0];
    p->second = d[1];
    if (p->first >> 6 != 2) {
        return -1;
    }
    p->seq = get16(d + 2);
    p->timestamp = get32(d + 4);
    p->ssrc = get32(d + 8);
    Py_ssize_t offset = 12 + 4 * (p->first & 0x0F);
    p->ext_profile = 0;
    p->ext_start = p->ext_end = 0;
    if (p->first & 0x10) {
        if (offset + 4 > size) {
            return -1;
        }
        p->ext_profile = get16(d + offset);
        p->ext_start = offset + 4;
        p->ext_end = p->ext_start + 4 * (Py_ssize_t)get16(d + offset + 2);
        offset = p->ext_end;
    }
    if (offset > size) {
        return -1;
    }
    Py_ssize_t end = size;
    if (p->first & 0x20) {
        int padding = d[size - 1];
        if (padding == 0 || offset + padding > size) {
            return -1;
        }
        end = size - padding;
    }
    p->payload_start = offset;
    p->payload_end = end;
    return 0;
}

/* packets.find_extension: 1 and (offset, length) when the element is there, else 0 */
static int find_extension(const unsigned char *d, const Parsed *p, int id, Py_ssize_t *offset,
                          Py_ssize_t *length) {
    if (!id || !p->ext_end) {
        return 0;
    }
    Py_ssize_t pos = p->ext_start, end = p->ext_end;
    if (p->ext_profile == 0xBEDE) {
        while (pos < end) {
            int byte = d[pos];
            if (byte == 0) { /* padding */
                pos++;
                continue;
            }
            int element = byte >> 4;
            Py_ssize_t size = (byte & 0x0F) + 1;
            if (element == 15 || pos + 1 + size > end) { /* reserved: stop; or truncated */
                return 0;
            }
            if (element == id) {
                *offset = pos + 1;
                *length = size;
                return 1;
            }
            pos += 1 + size;
        }
        return 0;
    }
    if ((p->ext_profile & 0xFFF0) == 0x1000) {
        while (pos < end) {
            int element = d[pos];
            if (element == 0) {
                pos++;
                continue;
            }
            if (pos + 2 > end) {
                return 0;
            }
            Py_ssize_t size = d[pos + 1];
            if (pos + 2 + size > end) {
                return 0;
            }
            if (element == id) {
                *offset = pos + 2;
                *length = size;
                return 1;
            }
            pos += 2 + size;
        }
    }
    return 0;
}

static void packet_info(const Parsed *p, int mid_found, Py_ssize_t mid_offset,
                        Py_ssize_t mid_length, PacketInfo *info) {
    info->marker = (p->second & 0x80) != 0;
    info->payload_type = p->second & 0x7F;
    info->seq = p->seq;
    info->timestamp = p->timestamp;
    info->ssrc = p->ssrc;
    info->bede = p->ext_profile == 0xBEDE;
    info->payload_length = p->payload_end - p->payload_start;
    info->mid_offset = mid_found ? mid_offset : 0;
    info->mid_length = mid_found ? mid_length : 0;
}

/* parse(data, mid_id) -> (marker, payload_type, seq, ts, ssrc, ext_profile, ext_start,
 * ext_end, payload_start, payload_end, mid_at) | None — what the receive path sees, for tests */
static PyObject *parse(PyObject *module, PyObject *args) {
    Py_buffer view;
    int mid_id;
    if (!PyArg_ParseTuple(args, "y*i", &view, &mid_id)) {
        return NULL;
    }
    Parsed p;
    PyObject *result;
    if (parse_rtp(view.buf, view.len, &p) < 0) {
        result = Py_None;
        Py_INCREF(result);
    } else {
        Py_ssize_t offset = 0, length = 0;
        PyObject *mid_at;
        if (find_extension(view.buf, &p, mid_id, &offset, &length)) {
            mid_at = Py_BuildValue("(nn)", offset, length);
        } else {
            mid_at = Py_None;
            Py_INCREF(mid_at);
        }
        result = mid_at == NULL ? NULL
                                : Py_BuildValue("(OiIIIInnnnN)", (p.second & 0x80) ? Py_True : Py_False,
                                                p.second & 0x7F, p.seq, p.timestamp, p.ssrc,
                                                p.ext_profile, p.ext_start, p.ext_end,
                                                p.payload_start, p.payload_end, mid_at);
    }
    PyBuffer_Release(&view);
    return result;
}

/* ----------------------------------------------------------------------------------- Route */

/* What the receive path needs of a published track: its subscribers' outputs, its MID
 * extension ID and its payload types (Python keeps it in sync: PublishedTrack.sync_route) */
typedef struct {
    PyObject_HEAD
    PyObject *outputs; /* tuple of Output */
    int mid_id;
    uint64_t payload_types[2];
} RouteObject;

static PyTypeObject RouteType;

static int route_traverse(RouteObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->outputs);
    return 0;
}

static int route_clear(RouteObject *self) {
    Py_CLEAR(self->outputs);
    return 0;
}

static void route_dealloc(RouteObject *self) {
    PyObject_GC_UnTrack(self);
    route_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *route_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    RouteObject *self = (RouteObject *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->outputs = PyTuple_New(0);
        if (self->outputs == NULL) {
            Py_DECREF(self);
            return NULL;
        }
    }
    return (PyObject *)self;
}

static PyObject *route_get_outputs(RouteObject *self, void *c) {
    Py_INCREF(self->outputs);
    return self->outputs;
}

static int route_set_outputs(RouteObject *self, PyObject *value, void *c) {
    if (value == NULL || check_outputs(value) < 0) {
        if (value == NULL) {
            PyErr_SetString(PyExc_AttributeError, "cannot delete");
        }
        return -1;
    }
    Py_INCREF(value);
    Py_SETREF(self->outputs, value);
    return 0;
}

static PyObject *route_get_mid_id(RouteObject *self, void *c) { return PyLong_FromLong(self->mid_id); }

static int route_set_mid_id(RouteObject *self, PyObject *value, void *c) {
    unsigned long long v;
    if (set_uint(value, 255ULL, &v) < 0) {
        return -1;
    }
    self->mid_id = (int)v;
    return 0;
}

static PyObject *route_set_payload_types(RouteObject *self, PyObject *iterable) {
    uint64_t mask[2] = {0, 0};
    if (read_payload_types(iterable, mask) < 0) {
        return NULL;
    }
    self->payload_types[0] = mask[0];
    self->payload_types[1] = mask[1];
    Py_RETURN_NONE;
}

static PyGetSetDef route_getset[] = {
    {"outputs", (getter)route_get_outputs, (setter)route_set_outputs,
     "the subscribers' outputs (a tuple of Output)", NULL},
    {"mid_id", (getter)route_get_mid_id, (setter)route_set_mid_id,
     "the publisher's MID header extension ID (0: none)", NULL},
    {NULL}};

static PyMethodDef route_methods[] = {
    {"set_payload_types", (PyCFunction)route_set_payload_types, METH_O,
     "set_payload_types(iterable of int): the track's codecs (RTX excluded)"},
    {NULL}};

static PyTypeObject RouteType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "media_relay._fastpath.Route",
    .tp_basicsize = sizeof(RouteObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "What the receive path needs of a published track.",
    .tp_new = route_new,
    .tp_dealloc = (destructor)route_dealloc,
    .tp_traverse = (traverseproc)route_traverse,
    .tp_clear = (inquiry)route_clear,
    .tp_methods = route_methods,
    .tp_getset = route_getset,
};

/* -------------------------------------------------------------------------------- Receiver */

/* One participant's receive side: its SRTP receive context and the dict of its published
 * tracks by SSRC (the participant's own `_inbound_by_ssrc`: values have a `route`).
 * With transport_cc_id set, every packet that verifies and parses leaves (transport-wide
 * sequence number, arrival) here for Python to drain (transport_cc.py), and loses the element
 * (zeroed: RFC 8285 padding) before anything else sees it; bind/unbind leave them alone. */
typedef struct {
    PyObject_HEAD
    void *ctx;
    PyObject *session;
    PyObject *tracks; /* dict: int ssrc -> object with a `route` attribute */
    int transport_cc_id;
    Py_ssize_t transport_cc_count;
    unsigned long long transport_cc_overflow;
    uint16_t transport_cc_seq[TRANSPORT_CC_CAPACITY];
    double transport_cc_at[TRANSPORT_CC_CAPACITY];
} ReceiverObject;

static PyTypeObject ReceiverType;
static PyObject *route_name = NULL; /* interned "route" */

static int receiver_traverse(ReceiverObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->session);
    Py_VISIT(self->tracks);
    return 0;
}

static int receiver_clear(ReceiverObject *self) {
    self->ctx = NULL;
    Py_CLEAR(self->session);
    Py_CLEAR(self->tracks);
    return 0;
}

static void receiver_dealloc(ReceiverObject *self) {
    PyObject_GC_UnTrack(self);
    receiver_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *receiver_bind(ReceiverObject *self, PyObject *args) {
    unsigned long long ctx;
    PyObject *session, *tracks;
    if (!PyArg_ParseTuple(args, "KOO!", &ctx, &session, &PyDict_Type, &tracks)) {
        return NULL;
    }
    if (ctx == 0) {
        PyErr_SetString(PyExc_ValueError, "no SRTP context");
        return NULL;
    }
    receiver_clear(self);
    Py_INCREF(session);
    self->session = session;
    Py_INCREF(tracks);
    self->tracks = tracks;
    self->ctx = (void *)(uintptr_t)ctx;
    Py_RETURN_NONE;
}

static PyObject *receiver_unbind(ReceiverObject *self, PyObject *unused) {
    receiver_clear(self);
    Py_RETURN_NONE;
}

static PyObject *receiver_get_bound(ReceiverObject *self, void *c) {
    return PyBool_FromLong(self->ctx != NULL);
}

static PyObject *receiver_get_transport_cc_id(ReceiverObject *self, void *c) {
    return PyLong_FromLong(self->transport_cc_id);
}

static int receiver_set_transport_cc_id(ReceiverObject *self, PyObject *value, void *c) {
    unsigned long long v;
    if (set_uint(value, 255ULL, &v) < 0) {
        return -1;
    }
    self->transport_cc_id = (int)v;
    return 0;
}

static PyObject *receiver_get_transport_cc_overflow(ReceiverObject *self, void *c) {
    return PyLong_FromUnsignedLongLong(self->transport_cc_overflow);
}

static int receiver_set_transport_cc_overflow(ReceiverObject *self, PyObject *value, void *c) {
    unsigned long long v;
    if (set_uint(value, ~0ULL, &v) < 0) {
        return -1;
    }
    self->transport_cc_overflow = v;
    return 0;
}

/* keep the packet's transport-wide sequence number and its arrival, when it carries one, and
 * blank the element: a subscriber's BUNDLE may map the same ID to transport-cc (its own
 * m-lines that publish), and would take the publisher's numbers for the relay's */
static inline void take_transport_cc(ReceiverObject *self, unsigned char *buffer,
                                     const Parsed *p, double now) {
    Py_ssize_t offset = 0, length = 0;
    if (!find_extension(buffer, p, self->transport_cc_id, &offset, &length)) {
        return;
    }
    if (length >= 2) {
        if (self->transport_cc_count < TRANSPORT_CC_CAPACITY) {
            self->transport_cc_seq[self->transport_cc_count] = (uint16_t)get16(buffer + offset);
            self->transport_cc_at[self->transport_cc_count] = now;
            self->transport_cc_count++;
        } else {
            self->transport_cc_overflow++;
        }
    }
    Py_ssize_t start = offset - (p->ext_profile == 0xBEDE ? 1 : 2);
    memset(buffer + start, 0, (size_t)(offset + length - start));
}

/* drain_transport_cc() -> [(sequence, arrival)] since the last drain */
static PyObject *receiver_drain_transport_cc(ReceiverObject *self, PyObject *unused) {
    Py_ssize_t count = self->transport_cc_count;
    PyObject *list = PyList_New(count);
    if (list == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *entry = Py_BuildValue("(Hd)", self->transport_cc_seq[i], self->transport_cc_at[i]);
        if (entry == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, entry);
    }
    self->transport_cc_count = 0;
    return list;
}

/* receive(data, now): unprotect, parse, find the track, fan out — the whole latency path.
 *   False                    not bound: the caller takes its own path
 *   None                     did not verify (SRTP): drop
 *   bytes                    plain RTP this path does not route (unknown SSRC, RTX, other
 *                            payload type, malformed): the caller's Python path takes it
 *   (track, bytes, pending)  forwarded to the subscribers in steady state; `pending` left to
 *                            Python, and the bookkeeping (cache, statistics) still to do */
static PyObject *receiver_receive(ReceiverObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "receive(data, now)");
        return NULL;
    }
    if (self->ctx == NULL || srtp_unprotect_fn == NULL) {
        Py_RETURN_FALSE;
    }
    double now = PyFloat_AsDouble(args[1]);
    if (now == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    unsigned char buffer[BUFFER_SIZE];
    if (view.len < 12 || view.len > BUFFER_SIZE) {
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
    memcpy(buffer, view.buf, (size_t)view.len);
    int length = (int)view.len;
    PyBuffer_Release(&view);
    if (srtp_unprotect_fn(self->ctx, buffer, &length) != 0 || length < 0 ||
        length > BUFFER_SIZE) {
        Py_RETURN_NONE;
    }
    Parsed p;
    PyObject *track = NULL;
    RouteObject *route = NULL;
    if (parse_rtp(buffer, length, &p) == 0) {
        if (self->transport_cc_id) {
            take_transport_cc(self, buffer, &p, now);
        }
        PyObject *key = PyLong_FromUnsignedLong(p.ssrc);
        if (key == NULL) {
            return NULL;
        }
        track = PyDict_GetItemWithError(self->tracks, key); /* borrowed */
        Py_DECREF(key);
        if (track == NULL && PyErr_Occurred()) {
            return NULL;
        }
    }
    if (track != NULL) {
        Py_INCREF(track); /* the dict may change under the attribute lookup */
        PyObject *found = PyObject_GetAttr(track, route_name);
        if (found == NULL) {
            PyErr_Clear();
        } else if (PyObject_TypeCheck(found, &RouteType)) {
            route = (RouteObject *)found;
        } else {
            Py_DECREF(found);
        }
        int pt = p.second & 0x7F;
        if (route != NULL && !((route->payload_types[pt >> 6] >> (pt & 63)) & 1)) {
            Py_CLEAR(route); /* not one of the track's codecs (RTX, …): Python decides */
        }
        if (route == NULL) {
            Py_CLEAR(track);
        }
    }
    if (track == NULL) {
        return PyBytes_FromStringAndSize((const char *)buffer, length);
    }
    Py_ssize_t mid_offset = 0, mid_length = 0;
    int mid_found = find_extension(buffer, &p, route->mid_id, &mid_offset, &mid_length);
    PacketInfo info;
    packet_info(&p, mid_found, mid_offset, mid_length, &info);
    PyObject *outputs = route->outputs;
    Py_INCREF(outputs);
    long pending = fanout_core(buffer, length, &info, outputs, now);
    Py_DECREF(outputs);
    Py_DECREF(route);
    PyObject *plain = PyBytes_FromStringAndSize((const char *)buffer, length);
    if (plain == NULL) {
        Py_DECREF(track);
        return NULL;
    }
    PyObject *result = Py_BuildValue("(NNl)", track, plain, pending);
    return result;
}

static PyMethodDef receiver_methods[] = {
    {"bind", (PyCFunction)receiver_bind, METH_VARARGS,
     "bind(ctx, session, tracks): unprotect with srtp_t `ctx` (kept alive by `session`); "
     "route by the dict `tracks` (SSRC -> object with a `route`)"},
    {"unbind", (PyCFunction)receiver_unbind, METH_NOARGS, "forget the context and the tracks"},
    {"receive", (PyCFunction)(void (*)(void))receiver_receive, METH_FASTCALL,
     "receive(data, now) -> False | None | bytes | (track, bytes, pending)"},
    {"drain_transport_cc", (PyCFunction)receiver_drain_transport_cc, METH_NOARGS,
     "drain_transport_cc() -> [(transport-wide sequence number, arrival)] since the last drain"},
    {NULL}};

static PyGetSetDef receiver_getset[] = {
    {"bound", (getter)receiver_get_bound, NULL, "a receive context is set", NULL},
    {"transport_cc_id", (getter)receiver_get_transport_cc_id,
     (setter)receiver_set_transport_cc_id,
     "the transport-wide-cc header extension ID (0: do not record)", NULL},
    {"transport_cc_overflow", (getter)receiver_get_transport_cc_overflow,
     (setter)receiver_set_transport_cc_overflow,
     "sequence numbers not kept: the buffer was full (not drained in time)", NULL},
    {NULL}};

static PyTypeObject ReceiverType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "media_relay._fastpath.Receiver",
    .tp_basicsize = sizeof(ReceiverObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "One participant's SRTP receive context and its tracks by SSRC.",
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)receiver_dealloc,
    .tp_traverse = (traverseproc)receiver_traverse,
    .tp_clear = (inquiry)receiver_clear,
    .tp_methods = receiver_methods,
    .tp_getset = receiver_getset,
};

/* unprotect(ctx, data) -> bytes | None: verify and decrypt one SRTP packet */
static PyObject *unprotect(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "unprotect(ctx, data)");
        return NULL;
    }
    unsigned long long ctx = PyLong_AsUnsignedLongLong(args[0]);
    if (ctx == (unsigned long long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (ctx == 0 || srtp_unprotect_fn == NULL || view.len < 12 || view.len > BUFFER_SIZE) {
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
    unsigned char buffer[BUFFER_SIZE];
    memcpy(buffer, view.buf, (size_t)view.len);
    int length = (int)view.len;
    PyBuffer_Release(&view);
    if (srtp_unprotect_fn((void *)(uintptr_t)ctx, buffer, &length) != 0 || length < 0 ||
        length > BUFFER_SIZE) {
        Py_RETURN_NONE;
    }
    return PyBytes_FromStringAndSize((const char *)buffer, length);
}

static PyObject *set_srtp(PyObject *module, PyObject *args) {
    unsigned long long protect, unprotect_address, protect_rtcp = 0;
    if (!PyArg_ParseTuple(args, "KK|K", &protect, &unprotect_address, &protect_rtcp)) {
        return NULL;
    }
    if (protect == 0 || unprotect_address == 0) {
        PyErr_SetString(PyExc_ValueError, "null function");
        return NULL;
    }
    srtp_protect_fn = (srtp_function)(uintptr_t)protect;
    srtp_unprotect_fn = (srtp_function)(uintptr_t)unprotect_address;
    srtp_protect_rtcp_fn = (srtp_function)(uintptr_t)protect_rtcp; /* 0: send_rtcp unbound */
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"fanout", (PyCFunction)(void (*)(void))fanout, METH_FASTCALL,
     "fanout(data, header, mid_at, outputs, now) -> outputs left pending for Python"},
    {"unprotect", (PyCFunction)(void (*)(void))unprotect, METH_FASTCALL,
     "unprotect(ctx, data) -> plain RTP bytes, or None when it does not verify"},
    {"parse", (PyCFunction)parse, METH_VARARGS,
     "parse(data, mid_id) -> header fields + mid_at, or None: the receive path's parser"},
    {"set_srtp", (PyCFunction)set_srtp, METH_VARARGS,
     "set_srtp(srtp_protect address, srtp_unprotect address[, srtp_protect_rtcp address])"},
    {NULL}};

static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT,
    .m_name = "media_relay._fastpath",
    .m_doc = "The relay's per-packet work in C (twin of media_relay/fastpath_py.py).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__fastpath(void) {
    if (PyType_Ready(&LinkType) < 0 || PyType_Ready(&OutputType) < 0 ||
        PyType_Ready(&RouteType) < 0 || PyType_Ready(&ReceiverType) < 0) {
        return NULL;
    }
    route_name = PyUnicode_InternFromString("route");
    if (route_name == NULL) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&module_definition);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&LinkType);
    Py_INCREF(&OutputType);
    Py_INCREF(&RouteType);
    Py_INCREF(&ReceiverType);
    if (PyModule_AddObject(module, "Link", (PyObject *)&LinkType) < 0 ||
        PyModule_AddObject(module, "Output", (PyObject *)&OutputType) < 0 ||
        PyModule_AddObject(module, "Route", (PyObject *)&RouteType) < 0 ||
        PyModule_AddObject(module, "Receiver", (PyObject *)&ReceiverType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
