// GDCM behind a C interface (see include/cdicom.h): GDCM parses the files, decodes any transfer
// syntax it supports (JPEG, JPEG 2000, JPEG-LS, RLE) and reports each slice's position,
// orientation, spacing and rescale; this file only groups, sorts and checks the slices.
#include "cdicom.h"

#include <gdcmDirectory.h>
#include <gdcmImage.h>
#include <gdcmImageReader.h>
#include <gdcmReader.h>
#include <gdcmScanner.h>
#include <gdcmTag.h>
#include <gdcmTrace.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <csignal>
#include <functional>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

thread_local std::string lastError;

int fail(const std::string &message) {
    lastError = message;
    return -1;
}

char *copyString(const std::string &text) {
    char *out = static_cast<char *>(std::malloc(text.size() + 1));
    if (out) std::memcpy(out, text.c_str(), text.size() + 1);
    return out;
}

// DICOM pads values with spaces (and UIDs with a NUL) to an even length.
std::string trimmed(const char *value) {
    if (!value) return "";
    std::string text(value);
    size_t end = text.find_last_not_of(std::string(" \0", 2));
    size_t start = text.find_first_not_of(' ');
    return end == std::string::npos ? "" : text.substr(start, end - start + 1);
}

std::string baseName(const std::string &path) {
    size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Files plainly of another format are passed over unopened: a folder of NIfTI volumes is not
// parsed file by file to learn that it holds no DICOM.
bool otherFormat(const std::string &name) {
    static const char *endings[] = {".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".png", ".jpg", ".jpeg", ".tif", ".tiff",
                                    ".bmp", ".gif", ".json", ".txt", ".csv", ".yaml", ".npy", ".npz", ".pkl", ".pth", ".safetensors",
                                    ".zip", ".gz", ".xz", ".md", ".html", ".pdf", ".xml"};
    std::string lower = name;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    for (const char *ending : endings) {
        size_t n = std::strlen(ending);
        if (lower.size() > n && lower.compare(lower.size() - n, n, ending) == 0) return true;
    }
    return false;
}

std::string number(double value) {
    std::ostringstream out;
    out.precision(4);
    out << value;
    return out.str();
}

const gdcm::Tag seriesUID(0x0020, 0x000e), modalityTag(0x0008, 0x0060), descriptionTag(0x0008, 0x103e),
    seriesNumberTag(0x0020, 0x0011), studyDateTag(0x0008, 0x0020);

// One file's image: where it lies and its samples as floats (rescale applied).
struct Slice {
    std::string file;
    double origin[3];
    double cosines[6];
    double spacing[3];
    unsigned dims[3];
    double position;  // along the slice normal
    std::vector<float> values;
    bool integer;
    bool hasPosition;
};

// GDCM prints its own diagnostics (and replaces what it cannot read with defaults, saying so
// there); MedSeg checks the values itself and reports in one line, so GDCM stays silent.
void silenceGDCM() {
    gdcm::Trace::SetDebug(false);
    gdcm::Trace::SetWarning(false);
    gdcm::Trace::SetError(false);
}

// The text of an element as stored (nil where absent or not a plain value).
bool elementText(const gdcm::DataSet &ds, uint16_t group, uint16_t element, std::string &out) {
    gdcm::Tag tag(group, element);
    if (!ds.FindDataElement(tag)) return false;
    const gdcm::ByteValue *value = ds.GetDataElement(tag).GetByteValue();
    if (!value || !value->GetPointer()) return false;
    out.assign(value->GetPointer(), value->GetLength());
    return true;
}

// A decimal string's values (DS, backslash-separated); false unless every one is a finite number.
bool decimals(const std::string &text, std::vector<double> &out) {
    out.clear();
    size_t start = 0;
    while (start <= text.size()) {
        size_t end = text.find('\\', start);
        if (end == std::string::npos) end = text.size();
        std::string item = trimmed(text.substr(start, end - start).c_str());
        if (item.empty()) return false;
        char *stop = nullptr;
        errno = 0;
        double v = std::strtod(item.c_str(), &stop);
        if (stop != item.c_str() + item.size() || !std::isfinite(v) || errno == ERANGE) return false;
        out.push_back(v);
        start = end + 1;
    }
    return true;
}

// An unsigned short (US) element, or -1.
long unsignedShort(const gdcm::DataSet &ds, uint16_t group, uint16_t element) {
    std::string text;
    if (!elementText(ds, group, element, text) || text.size() < 2) return -1;
    return long(uint8_t(text[0])) | long(uint8_t(text[1])) << 8;   // little endian, as GDCM keeps it
}

template <typename T> void widen(const std::vector<char> &raw, double slope, double intercept, std::vector<float> &out) {
    size_t n = raw.size() / sizeof(T);
    out.resize(n);
    const T *source = reinterpret_cast<const T *>(raw.data());
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(static_cast<double>(source[i]) * slope + intercept);
}

bool whole(double value) { return std::fabs(value - std::round(value)) < 1e-9; }

int readSlice(const std::string &file, Slice &slice, int &bits, int &isSigned) {
    // The data set alone first (no image interpreted yet): what GDCM's image reader would replace
    // with a default (a unit orientation, slope 1, spacing 1), fill with zeros (pixel data cut
    // short) or trip over (no samples per pixel) is checked here, so that no image is silently wrong.
    gdcm::Reader plain;
    plain.SetFileName(file.c_str());
    if (!plain.Read()) return fail(file + ": GDCM cannot read it as a DICOM file");
    const gdcm::DataSet &ds = plain.GetFile().GetDataSet();
    std::string text;
    std::vector<double> values;
    if (!elementText(ds, 0x0020, 0x0037, text))
        return fail(file + ": has no Image Orientation (Patient) (0020,0037): the slices' orientation is unknown");
    if (!decimals(text, values) || values.size() != 6)
        return fail(file + ": its Image Orientation (Patient) '" + trimmed(text.c_str()).substr(0, 80) + "' is not six numbers");
    {
        double rr = 0, cc = 0, rc = 0;
        for (int i = 0; i < 3; ++i) { rr += values[i] * values[i]; cc += values[i + 3] * values[i + 3]; rc += values[i] * values[i + 3]; }
        if (std::fabs(std::sqrt(rr) - 1) > 0.01 || std::fabs(std::sqrt(cc) - 1) > 0.01 || std::fabs(rc) > 0.01)
            return fail(file + ": its Image Orientation (Patient) " + trimmed(text.c_str()).substr(0, 80) +
                        " is not two orthogonal unit vectors (degenerate orientation)");
    }
    slice.hasPosition = elementText(ds, 0x0020, 0x0032, text);
    if (slice.hasPosition && (!decimals(text, values) || values.size() != 3 || std::fabs(values[0]) > 1e7 || std::fabs(values[1]) > 1e7 || std::fabs(values[2]) > 1e7))
        return fail(file + ": its Image Position (Patient) '" + trimmed(text.c_str()).substr(0, 80) + "' is not three finite coordinates (mm)");
    if (elementText(ds, 0x0028, 0x0030, text) && (!decimals(text, values) || values.size() != 2 || !(values[0] > 0 && values[1] > 0 && values[0] < 1e4 && values[1] < 1e4)))
        return fail(file + ": its Pixel Spacing '" + trimmed(text.c_str()).substr(0, 80) + "' is not two positive numbers (mm)");
    if (elementText(ds, 0x0028, 0x1053, text) && (!decimals(text, values) || values.size() != 1 || values[0] == 0 || std::fabs(values[0]) > 1e30))
        return fail(file + ": its Rescale Slope '" + trimmed(text.c_str()).substr(0, 80) + "' is not a non-zero number within +-1e30");
    if (elementText(ds, 0x0028, 0x1052, text) && (!decimals(text, values) || values.size() != 1 || std::fabs(values[0]) > 1e30))
        return fail(file + ": its Rescale Intercept '" + trimmed(text.c_str()).substr(0, 80) + "' is not a number within +-1e30");
    long samples = unsignedShort(ds, 0x0028, 0x0002), rows = unsignedShort(ds, 0x0028, 0x0010), columns = unsignedShort(ds, 0x0028, 0x0011);
    long allocated = unsignedShort(ds, 0x0028, 0x0100);
    if (samples < 1 || rows < 1 || columns < 1 || !(allocated == 8 || allocated == 16 || allocated == 32 || allocated == 64))
        return fail(file + ": Samples per Pixel " + std::to_string(samples) + ", Rows " + std::to_string(rows) + ", Columns " + std::to_string(columns) +
                    ", Bits Allocated " + std::to_string(allocated) + ": not an image MedSeg reads");
    long long frames = 1;
    if (elementText(ds, 0x0028, 0x0008, text)) {
        char *stop = nullptr;
        std::string item = trimmed(text.c_str());
        frames = std::strtoll(item.c_str(), &stop, 10);
        if (item.empty() || stop != item.c_str() + item.size() || frames < 1 || frames > 100000)
            return fail(file + ": its Number of Frames '" + item.substr(0, 40) + "' is not a count from 1 to 100000");
    }
    // Native pixel data must hold what Rows x Columns x frames x samples x bits need (GDCM fills a
    // short one with zeros); compressed data is checked by its decoder.
    const gdcm::Tag pixelTag(0x7fe0, 0x0010);
    if (!ds.FindDataElement(pixelTag)) return fail(file + ": has no Pixel Data");
    const gdcm::DataElement &pixels = ds.GetDataElement(pixelTag);
    unsigned long long pixelBytes = (unsigned long long)rows * columns * frames * samples * (allocated / 8);
    if (pixelBytes > (1ull << 31)) return fail(file + ": " + std::to_string(pixelBytes >> 20) + " MiB of pixels in one file; MedSeg reads up to 2 GiB");
    if (!pixels.GetSequenceOfFragments()) {
        const gdcm::ByteValue *bytes = pixels.GetByteValue();
        unsigned long long length = bytes ? (unsigned long long)(uint32_t)bytes->GetLength() : 0ull;
        if (length < pixelBytes)
            return fail(file + ": its pixel data is cut short: " + std::to_string(length) + " bytes, where Rows x Columns x frames needs " + std::to_string(pixelBytes));
        if (length > pixelBytes + 1 || (length == pixelBytes + 1 && pixelBytes % 2 == 0))
            return fail(file + ": its pixel data holds " + std::to_string(length) + " bytes, where Rows x Columns x frames needs " + std::to_string(pixelBytes));
    }
    gdcm::ImageReader reader;
    reader.SetFileName(file.c_str());
    if (!reader.Read()) return fail(file + ": GDCM cannot read it as a DICOM image (not an image, or a transfer syntax it does not decode)");
    const gdcm::Image &image = reader.GetImage();
    const gdcm::PixelFormat &format = image.GetPixelFormat();
    if (format.GetSamplesPerPixel() != 1)
        return fail(file + ": a colour image (" + std::to_string(format.GetSamplesPerPixel()) + " samples per pixel); only grayscale series (CT, MR, PET) are read");
    slice.file = file;
    for (int i = 0; i < 3; ++i) slice.origin[i] = image.GetOrigin(i);
    for (int i = 0; i < 6; ++i) slice.cosines[i] = image.GetDirectionCosines(i);
    for (int i = 0; i < 3; ++i) slice.spacing[i] = image.GetSpacing(i);
    slice.dims[0] = image.GetDimension(0);
    slice.dims[1] = image.GetDimension(1);
    slice.dims[2] = image.GetNumberOfDimensions() > 2 ? image.GetDimension(2) : 1;
    std::vector<char> raw(image.GetBufferLength());
    if (!image.GetBuffer(raw.data())) return fail(file + ": GDCM cannot decode its pixel data");
    double slope = image.GetSlope(), intercept = image.GetIntercept();
    bool integral = true;
    switch (format.GetScalarType()) {
    case gdcm::PixelFormat::UINT8: widen<uint8_t>(raw, slope, intercept, slice.values); bits = 8; isSigned = 0; break;
    case gdcm::PixelFormat::INT8: widen<int8_t>(raw, slope, intercept, slice.values); bits = 8; isSigned = 1; break;
    case gdcm::PixelFormat::UINT12:
    case gdcm::PixelFormat::UINT16: widen<uint16_t>(raw, slope, intercept, slice.values); bits = 16; isSigned = 0; break;
    case gdcm::PixelFormat::INT12:
    case gdcm::PixelFormat::INT16: widen<int16_t>(raw, slope, intercept, slice.values); bits = 16; isSigned = 1; break;
    case gdcm::PixelFormat::UINT32: widen<uint32_t>(raw, slope, intercept, slice.values); bits = 32; isSigned = 0; break;
    case gdcm::PixelFormat::INT32: widen<int32_t>(raw, slope, intercept, slice.values); bits = 32; isSigned = 1; break;
    case gdcm::PixelFormat::FLOAT32: widen<float>(raw, slope, intercept, slice.values); bits = 32; isSigned = 1; integral = false; break;
    case gdcm::PixelFormat::FLOAT64: widen<double>(raw, slope, intercept, slice.values); bits = 64; isSigned = 1; integral = false; break;
    default: return fail(file + ": pixel type " + format.GetScalarTypeAsString() + " is not read (8, 16 or 32-bit integers, 32 or 64-bit floats)");
    }
    size_t expected = size_t(slice.dims[0]) * slice.dims[1] * slice.dims[2];
    if (slice.values.size() != expected)
        return fail(file + ": its pixel data holds " + std::to_string(slice.values.size()) + " samples, its header says " + std::to_string(expected));
    slice.integer = integral && whole(slope) && whole(intercept);
    for (float v : slice.values)
        if (!std::isfinite(v)) return fail(file + ": its rescaled values overflow (slope " + number(slope) + ", intercept " + number(intercept) + ")");
    return 0;
}

int readSeries(const char *const *files, int count, md_volume *out);

// ---- GDCM in a child process ----
// GDCM's parser crashes on some malformed files (recursion through sequences nested thousands
// deep, elements cut short, absurd lengths). Untrusted files are therefore parsed in a forked
// child that sends its result back through a pipe: a crash there becomes one error line here.
// MEDSEG_DICOM_IN_PROCESS=1 parses in the process itself (for debugging).

void put(std::string &out, const void *data, size_t n) { out.append(static_cast<const char *>(data), n); }
void putString(std::string &out, const std::string &text) {
    uint64_t n = text.size();
    put(out, &n, sizeof(n));
    out += text;
}
struct Cursor {
    const std::string &data;
    size_t at = 0;
    bool take(void *to, size_t n) {
        if (at + n > data.size()) return false;
        std::memcpy(to, data.data() + at, n);
        at += n;
        return true;
    }
    bool takeString(std::string &text) {
        uint64_t n = 0;
        if (!take(&n, sizeof(n)) || at + n > data.size()) return false;
        text.assign(data.data() + at, n);
        at += n;
        return true;
    }
};

bool writeAll(int fd, const char *data, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, data, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        data += w;
        n -= size_t(w);
    }
    return true;
}

// Runs `work` (which fills `payload`, or returns -1 with lastError set) in a child; the payload, or -1.
int isolated(const std::string &what, const std::function<int(std::string &)> &work, std::string &payload) {
    const char *inProcess = getenv("MEDSEG_DICOM_IN_PROCESS");
    if (inProcess && std::strcmp(inProcess, "1") == 0) return work(payload);
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return fail(what + ": cannot start the DICOM reader (" + std::strerror(errno) + ")");
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return fail(what + ": cannot start the DICOM reader (" + std::strerror(errno) + ")");
    }
    if (pid == 0) {
        close(fds[0]);
        // The child dies at once on a crash (no crash reporter of the parent's runtime), and what
        // GDCM, libjpeg and OpenJPEG print goes nowhere: the parent reports in one line.
        for (int sig : {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGTRAP}) signal(sig, SIG_DFL);
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) { dup2(devnull, 1); dup2(devnull, 2); close(devnull); }
        std::string out;
        int rc = -1;
        try { rc = work(out); } catch (const std::exception &error) { lastError = what + ": " + error.what(); }
        std::string message = rc == 0 ? out : lastError;
        char status = rc == 0 ? 0 : 1;
        bool ok = writeAll(fds[1], &status, 1) && writeAll(fds[1], message.data(), message.size());
        _exit(ok ? 0 : 3);
    }
    close(fds[1]);
    std::string received;
    std::vector<char> buffer(1 << 20);
    bool timedOut = false;
    for (;;) {
        struct pollfd p = {fds[0], POLLIN, 0};
        int ready = poll(&p, 1, 300 * 1000);  // five minutes without a byte: hung
        if (ready < 0 && errno == EINTR) continue;
        if (ready == 0) { timedOut = true; kill(pid, SIGKILL); break; }
        ssize_t n = read(fds[0], buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        received.append(buffer.data(), size_t(n));
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (timedOut) return fail(what + ": the DICOM reader found no end to it in five minutes (a malformed file)");
    if (WIFSIGNALED(status))
        return fail(what + ": GDCM crashed reading it (signal " + std::to_string(WTERMSIG(status)) + ", " + strsignal(WTERMSIG(status)) +
                    "): a malformed DICOM file");
    if (received.empty()) return fail(what + ": the DICOM reader ended without an answer (exit " + std::to_string(WEXITSTATUS(status)) + ")");
    if (received[0] != 0) return fail(received.substr(1));
    received.erase(0, 1);   // in place: a volume's bytes are not copied once more
    payload.swap(received);
    return 0;
}

int listFiles(const char *folder, std::vector<std::string> &files);
int scanFiles(const char *folder, const std::vector<std::string> &files, md_series **series, int *count);

}  // namespace

extern "C" {

const char *md_last_error(void) { return lastError.c_str(); }

int md_scan_folder(const char *folder, md_series **series, int *count) {
    *series = nullptr;
    *count = 0;
    struct stat info;
    if (stat(folder, &info) != 0 || !S_ISDIR(info.st_mode)) return 0;  // GDCM asserts on anything but a folder
    std::vector<std::string> files;
    if (listFiles(folder, files) != 0) return -1;
    std::string payload;
    auto scan = [&](const std::vector<std::string> &some, std::string &out) {
        md_series *found = nullptr;
        int n = 0;
        if (scanFiles(folder, some, &found, &n) != 0) return -1;
        int32_t n32 = n;
        put(out, &n32, sizeof(n32));
        for (int i = 0; i < n; ++i) {
            for (const char *text : {found[i].uid, found[i].modality, found[i].description, found[i].series_number, found[i].study_date})
                putString(out, text ? text : "");
            int32_t files = found[i].file_count;
            put(out, &files, sizeof(files));
            for (int f = 0; f < files; ++f) putString(out, found[i].files[f]);
        }
        md_free_series(found, n);
        return 0;
    };
    if (isolated(std::string(folder), [&](std::string &out) { return scan(files, out); }, payload) != 0) {
        // A crash names no file: find the first file that crashes the scanner on its own.
        std::string crash = lastError;
        if (crash.find("GDCM crashed") == std::string::npos && crash.find("found no end") == std::string::npos) return -1;
        for (const auto &file : files) {
            std::string ignored;
            if (isolated(file, [&](std::string &out) { return scan({file}, out); }, ignored) != 0) return -1;
        }
        return fail(crash);
    }
    Cursor in{payload};
    int32_t n = 0;
    if (!in.take(&n, sizeof(n)) || n < 0) return fail(std::string(folder) + ": the DICOM reader's answer is cut short");
    if (n == 0) return 0;
    md_series *out = static_cast<md_series *>(std::calloc(size_t(n), sizeof(md_series)));
    if (!out) return fail("out of memory listing DICOM series");
    for (int i = 0; i < n; ++i) {
        std::string texts[5];
        int32_t files = 0;
        bool ok = true;
        for (auto &text : texts) ok = ok && in.takeString(text);
        ok = ok && in.take(&files, sizeof(files)) && files >= 0;
        if (!ok) { md_free_series(out, n); return fail(std::string(folder) + ": the DICOM reader's answer is cut short"); }
        out[i].uid = copyString(texts[0]);
        out[i].modality = copyString(texts[1]);
        out[i].description = copyString(texts[2]);
        out[i].series_number = copyString(texts[3]);
        out[i].study_date = copyString(texts[4]);
        out[i].file_count = files;
        out[i].files = static_cast<char **>(std::calloc(size_t(std::max(files, 1)), sizeof(char *)));
        for (int f = 0; f < files; ++f) {
            std::string path;
            if (!in.takeString(path)) { md_free_series(out, n); return fail(std::string(folder) + ": the DICOM reader's answer is cut short"); }
            out[i].files[f] = copyString(path);
        }
    }
    *series = out;
    *count = n;
    return 0;
}

}  // extern "C"

namespace {

// The candidate files of a folder, sorted. Listed here, not by GDCM's directory walk, which stops
// at the first entry it cannot stat (a dangling link, a FIFO) and so dropped the rest of a series.
// Regular files only.
int listFiles(const char *folder, std::vector<std::string> &files) {
    DIR *dir = opendir(folder);
    if (!dir) return fail(std::string(folder) + ": cannot list the folder (" + std::strerror(errno) + ")");
    while (struct dirent *entry = readdir(dir)) {
        std::string name = entry->d_name;
        if (name.empty() || name[0] == '.' || otherFormat(name)) continue;
        std::string path = std::string(folder) + (std::string(folder).back() == '/' ? "" : "/") + name;
        struct stat st;
        if (stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) files.push_back(path);
    }
    closedir(dir);
    std::sort(files.begin(), files.end());
    return 0;
}

int scanFiles(const char *folder, const std::vector<std::string> &files, md_series **series, int *count) {
    *series = nullptr;
    *count = 0;
    silenceGDCM();
    gdcm::Scanner scanner;
    for (const gdcm::Tag &tag : {seriesUID, modalityTag, descriptionTag, seriesNumberTag, studyDateTag}) scanner.AddTag(tag);
    if (!files.empty() && !scanner.Scan(files)) return fail(std::string(folder) + ": GDCM could not scan the folder's files");
    struct Group { std::string modality, description, number, date; std::vector<std::string> files; };
    std::map<std::string, Group> groups;
    for (const auto &file : files) {
        if (!scanner.IsKey(file.c_str())) continue;
        std::string uid = trimmed(scanner.GetValue(file.c_str(), seriesUID));
        if (uid.empty()) continue;
        Group &group = groups[uid];
        if (group.files.empty()) {
            group.modality = trimmed(scanner.GetValue(file.c_str(), modalityTag));
            group.description = trimmed(scanner.GetValue(file.c_str(), descriptionTag));
            group.number = trimmed(scanner.GetValue(file.c_str(), seriesNumberTag));
            group.date = trimmed(scanner.GetValue(file.c_str(), studyDateTag));
        }
        group.files.push_back(file);
    }
    std::vector<std::pair<std::string, Group *>> ordered;
    for (auto &entry : groups) ordered.push_back({entry.first, &entry.second});
    std::sort(ordered.begin(), ordered.end(), [](const auto &a, const auto &b) {
        long na = std::atol(a.second->number.c_str()), nb = std::atol(b.second->number.c_str());
        return na != nb ? na < nb : a.first < b.first;
    });
    if (ordered.empty()) return 0;
    md_series *out = static_cast<md_series *>(std::calloc(ordered.size(), sizeof(md_series)));
    if (!out) return fail("out of memory listing DICOM series");
    for (size_t i = 0; i < ordered.size(); ++i) {
        const Group &group = *ordered[i].second;
        out[i].uid = copyString(ordered[i].first);
        out[i].modality = copyString(group.modality);
        out[i].description = copyString(group.description);
        out[i].series_number = copyString(group.number);
        out[i].study_date = copyString(group.date);
        out[i].file_count = int(group.files.size());
        out[i].files = static_cast<char **>(std::calloc(group.files.size(), sizeof(char *)));
        for (size_t f = 0; f < group.files.size() && out[i].files; ++f) out[i].files[f] = copyString(group.files[f]);
    }
    *series = out;
    *count = int(ordered.size());
    return 0;
}

}  // namespace

extern "C" {

void md_free_series(md_series *series, int count) {
    if (!series) return;
    for (int i = 0; i < count; ++i) {
        std::free(series[i].uid);
        std::free(series[i].modality);
        std::free(series[i].description);
        std::free(series[i].series_number);
        std::free(series[i].study_date);
        for (int f = 0; f < series[i].file_count && series[i].files; ++f) std::free(series[i].files[f]);
        std::free(series[i].files);
    }
    std::free(series);
}

int md_read_series(const char *const *files, int count, md_volume *out) {
    std::memset(out, 0, sizeof(*out));
    if (count < 1) return fail("no files in the series");
    std::string what = std::string(files[0]) + (count > 1 ? " (series of " + std::to_string(count) + " files)" : "");
    std::string payload;
    int rc = isolated(what, [&](std::string &bytes) {
        silenceGDCM();
        md_volume volume;
        std::memset(&volume, 0, sizeof(volume));
        int status = -1;
        try { status = readSeries(files, count, &volume); } catch (const std::exception &error) { md_free_volume(&volume); return fail(what + ": " + error.what()); }
        if (status != 0) return -1;
        md_volume header = volume;
        header.voxels = nullptr;
        put(bytes, &header, sizeof(header));
        size_t n = size_t(volume.size[0]) * volume.size[1] * volume.size[2];
        put(bytes, volume.voxels, n * sizeof(float));
        md_free_volume(&volume);
        return 0;
    }, payload);
    if (rc != 0) return -1;
    md_volume header;
    if (payload.size() < sizeof(header)) return fail(what + ": the DICOM reader's answer is cut short");
    std::memcpy(&header, payload.data(), sizeof(header));
    size_t n = size_t(header.size[0]) * header.size[1] * header.size[2];
    if (payload.size() != sizeof(header) + n * sizeof(float)) return fail(what + ": the DICOM reader's answer is cut short");
    *out = header;
    out->voxels = static_cast<float *>(std::malloc(std::max<size_t>(n, 1) * sizeof(float)));
    if (!out->voxels) return fail("out of memory reading " + std::to_string(n) + " voxels of " + what);
    std::memcpy(out->voxels, payload.data() + sizeof(header), n * sizeof(float));
    return 0;
}

}  // extern "C"

namespace {

int readSeries(const char *const *files, int count, md_volume *out) {
    std::vector<Slice> slices(count);
    int bits = 0, isSigned = 0;
    for (int i = 0; i < count; ++i)
        if (readSlice(files[i], slices[i], bits, isSigned) != 0) return -1;
    // The first file's header, kept apart from the slices, which sorting reorders.
    struct Header { std::string file; double cosines[6]; double spacing[3]; unsigned dims[3]; } first;
    first.file = slices[0].file;
    std::memcpy(first.cosines, slices[0].cosines, sizeof(first.cosines));
    std::memcpy(first.spacing, slices[0].spacing, sizeof(first.spacing));
    std::memcpy(first.dims, slices[0].dims, sizeof(first.dims));
    if (count > 1 && first.dims[2] > 1)
        return fail(first.file + ": a multi-frame file among " + std::to_string(count) + " files of one series; read it on its own");
    const double *r = first.cosines, *c = first.cosines + 3;
    double normal[3] = {r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]};
    double length = std::sqrt(normal[0] * normal[0] + normal[1] * normal[1] + normal[2] * normal[2]);
    if (!(length > 0.5)) return fail(first.file + ": its Image Orientation (Patient) is missing or degenerate");
    for (double &v : normal) v /= length;
    for (Slice &slice : slices) {
        if (slice.dims[0] != first.dims[0] || slice.dims[1] != first.dims[1])
            return fail(slice.file + ": " + std::to_string(slice.dims[0]) + " x " + std::to_string(slice.dims[1]) + " pixels, while " +
                        baseName(first.file) + " has " + std::to_string(first.dims[0]) + " x " + std::to_string(first.dims[1]) +
                        ": not one volume (a localizer or another acquisition in the series?)");
        for (int i = 0; i < 6; ++i)
            if (std::fabs(slice.cosines[i] - first.cosines[i]) > 1e-4)
                return fail(slice.file + ": its orientation differs from " + baseName(first.file) + "'s: not one volume (a localizer in the series?)");
        slice.position = slice.origin[0] * normal[0] + slice.origin[1] * normal[1] + slice.origin[2] * normal[2];
    }
    if (count > 1)
        for (const Slice &slice : slices)
            if (!slice.hasPosition) return fail(slice.file + ": has no Image Position (Patient) (0020,0032): its place in the series is unknown");
    std::stable_sort(slices.begin(), slices.end(), [](const Slice &a, const Slice &b) { return a.position < b.position; });
    double zSpacing = first.dims[2] > 1 ? first.spacing[2] : 1;
    if (count > 1) {
        zSpacing = (slices.back().position - slices.front().position) / (count - 1);
        if (!(zSpacing < 1e4))
            return fail(slices.back().file + ": " + number(zSpacing) + " mm from slice to slice: the positions are not those of one volume");
        // Repeated positions first: they also make the gaps uneven, but are the cause to report.
        for (int i = 0; i + 1 < count; ++i)
            if (slices[i + 1].position - slices[i].position < 1e-4 * std::max(1.0, zSpacing))
                return fail(slices[i + 1].file + " and " + baseName(slices[i].file) + " lie at the same position (" + number(slices[i].position) +
                            " mm along the slice normal): two acquisitions or echoes in one series; separate them into folders");
        for (int i = 0; i + 1 < count; ++i) {
            double gap = slices[i + 1].position - slices[i].position;
            if (std::fabs(gap - zSpacing) > std::max(1e-3, 0.01 * zSpacing))
                return fail(slices[i + 1].file + ": " + number(gap) + " mm from " + baseName(slices[i].file) + ", while the series' slices are " +
                            number(zSpacing) + " mm apart on average: unevenly spaced slices (a missing file?)");
        }
        double along[3], offNormal = 0, step = 0;
        for (int i = 0; i < 3; ++i) along[i] = slices.back().origin[i] - slices.front().origin[i];
        for (int i = 0; i < 3; ++i) step += along[i] * normal[i];
        for (int i = 0; i < 3; ++i) offNormal += std::pow(along[i] - step * normal[i], 2);
        double tilt = std::atan2(std::sqrt(offNormal), std::fabs(step)) * 180 / M_PI;
        if (tilt > 0.1)
            return fail(slices.front().file + ": the slices are sheared by " + number(tilt) +
                        " degrees (gantry tilt); resample the series to an orthogonal grid first (dcm2niix writes a _Tilt_ corrected volume)");
    }
    size_t plane = size_t(first.dims[0]) * first.dims[1], total = plane * first.dims[2] * count;
    out->voxels = static_cast<float *>(std::malloc(total * sizeof(float)));
    if (!out->voxels) return fail("out of memory reading " + std::to_string(total) + " voxels of " + first.file);
    out->minimum = INFINITY;
    out->maximum = -INFINITY;
    out->integer = 1;
    size_t offset = 0;
    for (const Slice &slice : slices) {
        std::memcpy(out->voxels + offset, slice.values.data(), slice.values.size() * sizeof(float));
        offset += slice.values.size();
        for (float v : slice.values) {
            out->minimum = std::min(out->minimum, double(v));
            out->maximum = std::max(out->maximum, double(v));
        }
        if (!slice.integer) out->integer = 0;
    }
    out->size[0] = int(first.dims[0]);
    out->size[1] = int(first.dims[1]);
    out->size[2] = int(first.dims[2]) * count;
    out->spacing[0] = first.spacing[0];
    out->spacing[1] = first.spacing[1];
    out->spacing[2] = zSpacing;
    for (int i = 0; i < 3; ++i) {
        out->origin[i] = slices.front().origin[i];
        out->direction[i * 3 + 0] = r[i];
        out->direction[i * 3 + 1] = c[i];
        out->direction[i * 3 + 2] = normal[i];
    }
    out->stored_bits = bits;
    out->stored_signed = isSigned;
    return 0;
}

}  // namespace

extern "C" {

void md_free_volume(md_volume *volume) {
    if (!volume) return;
    std::free(volume->voxels);
    volume->voxels = nullptr;
}

}  // extern "C"
