/* The resident identity numbers of a manifest checked in one pass, compiled.
 *
 * Why C: in numpy (ids._valid_rics and the lists around it) a manifest of 300
 * fresh people took ~160 us, ~8 % of a server's CPU for the manifest
 * (bench/RESULTS.md, "Checks", session 16): two dozen array passes over 300
 * rows, each mostly call overhead. Here each text is read once.
 *
 * It decides exactly what ids.canonical_persons' numpy path decides (GB 11643:
 * 17 digits and a check character, a real date of birth not after today, the
 * region in use in the year of birth, from the same tables), and
 * tests/test_ids_fast.py compares the two. When a text needs Python (its
 * region not looked up yet, a year of birth outside the table's 1900-2155), it
 * returns None and the caller takes the numpy path for the whole manifest.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define FIRST_YEAR 1900
#define YEARS 256         /* columns of a region's row of years: 1900-2155 */
#define REGIONS 1000000   /* six-digit region codes */
#define PERSON "person:"
#define PERSON_LEN 7
#define RIC_LEN 18

static const int WEIGHTS[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
static const char CHECK[] = "10X98765432";
static const int DAYS[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

/* 1: a valid number; 0: not one; -1: Python must decide. */
static int check(const char *s, const int16_t *region_row, const uint8_t *year_rows,
                 Py_ssize_t rows, long today) {
    int d[17];
    long sum = 0;
    for (int i = 0; i < 17; i++) {
        unsigned v = (unsigned char)s[i] - '0';
        if (v > 9)
            return 0;
        d[i] = (int)v;
        sum += (long)v * WEIGHTS[i];
    }
    if (CHECK[sum % 11] != s[17])
        return 0;
    long region = 0;
    for (int i = 0; i < 6; i++)
        region = region * 10 + d[i];
    long year = d[6] * 1000 + d[7] * 100 + d[8] * 10 + d[9];
    int month = d[10] * 10 + d[11], day = d[12] * 10 + d[13];
    if (month < 1 || month > 12 || year < 1)
        return 0;
    int leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    int days = month == 2 && !leap ? 28 : DAYS[month];
    if (day < 1 || day > days || year * 10000 + month * 100 + day > today)
        return 0;
    int row = region_row[region];
    long column = year - FIRST_YEAR;
    if (row <= 0 || row >= rows || column < 0 || column >= YEARS)
        return -1;
    return year_rows[(Py_ssize_t)row * YEARS + column] != 0;
}

PyDoc_STRVAR(scan_doc,
"scan(texts, region_row, year_rows, rows, today) -> list or None\n\n"
"For each text of the list texts, 'person:' and the number when it is a valid resident\n"
"identity number ('person:' and 18 characters, or the 18 alone), else None. region_row: the\n"
"int16 row of each six-digit region (0: not looked up); year_rows: the (rows, 256) bool\n"
"table of the years each row was in use; today: YYYYMMDD. None when a text needs Python.");

static PyObject *scan(PyObject *self, PyObject *args) {
    PyObject *texts, *out = NULL;
    Py_buffer region_buf, years_buf;
    Py_ssize_t rows;
    long today;
    if (!PyArg_ParseTuple(args, "O!y*y*nl", &PyList_Type, &texts, &region_buf, &years_buf, &rows, &today))
        return NULL;
    if (region_buf.len != REGIONS * (Py_ssize_t)sizeof(int16_t) || rows < 0 || years_buf.len != rows * YEARS) {
        PyErr_SetString(PyExc_ValueError, "scan: region_row must hold 1,000,000 int16 and year_rows rows x 256 bytes");
        goto done;
    }
    const int16_t *region_row = (const int16_t *)region_buf.buf;
    const uint8_t *year_rows = (const uint8_t *)years_buf.buf;
    Py_ssize_t n = PyList_GET_SIZE(texts);
    out = PyList_New(n);
    if (out == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *text = PyList_GET_ITEM(texts, i), *found = Py_None;
        Py_INCREF(Py_None);
        PyList_SET_ITEM(out, i, Py_None);
        if (!PyUnicode_Check(text) || !PyUnicode_IS_COMPACT_ASCII(text))
            continue;
        Py_ssize_t len = PyUnicode_GET_LENGTH(text);
        const char *s = (const char *)PyUnicode_1BYTE_DATA(text);
        const char *number;
        if (len == PERSON_LEN + RIC_LEN && memcmp(s, PERSON, PERSON_LEN) == 0)
            number = s + PERSON_LEN;
        else if (len == RIC_LEN)
            number = s;
        else
            continue;
        int valid = check(number, region_row, year_rows, rows, today);
        if (valid < 0) {
            Py_CLEAR(out);
            Py_INCREF(Py_None);
            out = Py_None;
            goto done;
        }
        if (!valid)
            continue;
        if (number != s) {  /* already 'person:' and the number: the text itself */
            Py_INCREF(text);
            found = text;
        } else {
            found = PyUnicode_New(PERSON_LEN + RIC_LEN, 127);
            if (found == NULL) {
                Py_CLEAR(out);
                goto done;
            }
            char *to = (char *)PyUnicode_1BYTE_DATA(found);
            memcpy(to, PERSON, PERSON_LEN);
            memcpy(to + PERSON_LEN, number, RIC_LEN);
        }
        Py_DECREF(Py_None);
        PyList_SET_ITEM(out, i, found);
    }
done:
    PyBuffer_Release(&region_buf);
    PyBuffer_Release(&years_buf);
    return out;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, scan_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "credo._ric", "Resident identity numbers of a manifest, checked in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__ric(void) { return PyModule_Create(&module); }
