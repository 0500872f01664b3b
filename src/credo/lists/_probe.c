/* The check index's look-up of a manifest of canonical persons, compiled.
 *
 * Why C: in numpy the look-up of a manifest of 300 took 85-146 ns a subject on
 * this project's 2-CPU machines (bench/RESULTS.md, "Checks"), against the
 * 100 ns of issue 5: a dozen array passes, each ~0.5-1 us of call overhead,
 * and the two bucket reads of each subject (cache and TLB misses in a table of
 * up to ~170 MiB) one after the other. Here each text is read once, and the
 * buckets of the subjects a few places ahead are prefetched while the current
 * one is compared, so their misses overlap.
 *
 * It computes exactly what index.py's numpy path does (``canonical_person_hashes``,
 * ``Snapshot.matches`` with ``keys`` None, the overlay filter's cells); tests
 * compare the two on random manifests. Anything but a canonical person's text
 * ("person:" and 18 characters, the first 17 digits) makes it return None, and
 * the caller takes the numpy path.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define SLOTS 4
#define PERSON_LEN 25 /* "person:" + 17 digits + the check character */
#define AHEAD 8       /* subjects whose buckets are prefetched ahead of the one compared */
#define FILTER_BITS 20

static const uint64_t MULTIPLIER = 0x9E3779B97F4A7C15ULL;

/* The hashed key of a canonical person's text in *h; 0 when the text is not one. */
static int hashed_person(PyObject *text, uint64_t *h) {
    if (!PyUnicode_Check(text) || !PyUnicode_IS_COMPACT_ASCII(text) ||
        PyUnicode_GET_LENGTH(text) != PERSON_LEN)
        return 0;
    const char *s = (const char *)PyUnicode_1BYTE_DATA(text);
    if (memcmp(s, "person:", 7) != 0)
        return 0;
    uint64_t key = 0;
    for (int i = 7; i < 24; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9)
            return 0;
        key = key * 10 + d;
    }
    *h = key * MULTIPLIER; /* modulo 2**64: a bijection, so 0 only for the key 0 */
    return 1;
}

PyDoc_STRVAR(probe_doc,
"probe(subjects, table, overlay_filter) -> (rows, slots, marked) or None\n\n"
"subjects: a list of canonical texts; table: the snapshot's (buckets, 4) uint64 array;\n"
"overlay_filter: the index's filter bytes, or None. rows and slots: the subjects found in\n"
"the table and their slots; marked: the rows the overlay filter lets through. None when a\n"
"text is not a canonical person's.");

static PyObject *probe(PyObject *self, PyObject *args) {
    PyObject *subjects, *filter_obj;
    Py_buffer table, filter = {0};
    if (!PyArg_ParseTuple(args, "O!y*O", &PyList_Type, &subjects, &table, &filter_obj))
        return NULL;
    int has_filter = filter_obj != Py_None;
    if (has_filter && PyObject_GetBuffer(filter_obj, &filter, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&table);
        return NULL;
    }
    PyObject *result = NULL, *rows = NULL, *slots = NULL, *marked = NULL;
    Py_ssize_t n = PyList_GET_SIZE(subjects);
    uint64_t count = (uint64_t)(table.len / (Py_ssize_t)(SLOTS * sizeof(uint64_t)));
    const uint64_t *cells = (const uint64_t *)table.buf;
    const uint8_t *flags = has_filter ? (const uint8_t *)filter.buf : NULL;
    if (has_filter && filter.len != ((Py_ssize_t)1 << FILTER_BITS)) {
        PyErr_SetString(PyExc_ValueError, "overlay_filter: 2**20 bytes expected");
        goto done;
    }
    uint64_t *h = PyMem_Malloc((size_t)(n ? n : 1) * 3 * sizeof(uint64_t));
    if (h == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    uint64_t *low = h + n, *high = h + 2 * n;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!hashed_person(PyList_GET_ITEM(subjects, i), &h[i])) {
            PyMem_Free(h);
            result = Py_NewRef(Py_None);
            goto done;
        }
        low[i] = ((h[i] & 0xFFFFFFFFULL) * count) >> 32;
        high[i] = ((h[i] >> 32) * count) >> 32;
    }
    rows = PyList_New(0);
    slots = PyList_New(0);
    marked = PyList_New(0);
    if (rows == NULL || slots == NULL || marked == NULL)
        goto free_h;
    for (Py_ssize_t i = 0; i < n && count; i++) {
        if (i + AHEAD < n) {
            __builtin_prefetch(cells + low[i + AHEAD] * SLOTS);
            __builtin_prefetch(cells + high[i + AHEAD] * SLOTS);
        }
        uint64_t key = h[i];
        if (key == 0) /* the key 0 matches every empty slot: never listed */
            continue;
        /* the last slot found, as the numpy path: the high bucket's first, then the low's */
        long long slot = -1;
        const uint64_t *b = cells + high[i] * SLOTS;
        for (int j = SLOTS - 1; j >= 0 && slot < 0; j--)
            if (b[j] == key)
                slot = (long long)(high[i] * SLOTS + j);
        b = cells + low[i] * SLOTS;
        for (int j = SLOTS - 1; j >= 0 && slot < 0; j--)
            if (b[j] == key)
                slot = (long long)(low[i] * SLOTS + j);
        if (slot >= 0) {
            PyObject *r = PyLong_FromSsize_t(i), *s = PyLong_FromLongLong(slot);
            int bad = r == NULL || s == NULL || PyList_Append(rows, r) < 0 || PyList_Append(slots, s) < 0;
            Py_XDECREF(r);
            Py_XDECREF(s);
            if (bad)
                goto free_h;
        }
    }
    for (Py_ssize_t i = 0; i < n && has_filter; i++) {
        uint8_t cell = flags[h[i] >> (64 - FILTER_BITS)];
        if (cell & (1u << ((h[i] >> (64 - FILTER_BITS - 3)) & 7))) {
            PyObject *r = PyLong_FromSsize_t(i);
            int bad = r == NULL || PyList_Append(marked, r) < 0;
            Py_XDECREF(r);
            if (bad)
                goto free_h;
        }
    }
    result = PyTuple_Pack(3, rows, slots, marked);
free_h:
    PyMem_Free(h);
done:
    Py_XDECREF(rows);
    Py_XDECREF(slots);
    Py_XDECREF(marked);
    PyBuffer_Release(&table);
    if (has_filter)
        PyBuffer_Release(&filter);
    return result;
}

static PyMethodDef methods[] = {
    {"probe", probe, METH_VARARGS, probe_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "credo.lists._probe", "The check index's compiled look-up.", -1, methods,
};

PyMODINIT_FUNC PyInit__probe(void) { return PyModule_Create(&module); }
