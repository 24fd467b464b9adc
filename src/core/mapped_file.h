// Read-only view of a whole weights file (RAII). Weights are views into it: zero copy when
// mapped, one copy when loaded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/result.h"

namespace moe {

class ProgressBar;

// Where weight files live in memory.
//  Map:  mmap of the file: nothing read up front, pages shared with the page cache and
//        dropped under memory pressure -- the choice for models near or above RAM.
//  Load: read into anonymous memory backed by 2 MiB transparent huge pages. Decode streams
//        hundreds of MiB of experts per token; with 4 KiB file pages every page costs a TLB
//        miss and restarts the hardware prefetcher (measured on OLMoE-1B-7B shapes, Q4_K_M,
//        2 threads: decode 40 -> 53 t/s, prompt 72 -> 96 t/s on Q8_0).
//  Auto: Load for files of at least 64 MiB that fit in half of MemAvailable, else Map.
// A mapped file that fits in memory is populated at open (read in parallel, page tables filled),
// so load time shows the real cost and the first prompt does not fault pages in one by one.
enum class WeightMemory { Auto, Map, Load };
// What Auto picks for a file of file_bytes with mem_available bytes of MemAvailable (0: unknown).
WeightMemory choose_weight_memory(uint64_t file_bytes, uint64_t mem_available);
// Whether a mapped file of file_bytes is read in at open: it fits in 90% of MemAvailable.
bool should_populate_mapping(uint64_t file_bytes, uint64_t mem_available);
// Reads the pages of a read-only file mapping in (several threads, large chunks), adding bytes
// done to bar when given. A file that shrank or cannot be read is an error naming `path`,
// never a SIGBUS.
Result<void> populate_mapping(const uint8_t* data, size_t size, const std::string& path,
                              ProgressBar* bar);
// Process-wide choice for files opened from now on (the CLI's --mmap / --no-mmap).
void set_weight_memory(WeightMemory m);
WeightMemory weight_memory();
// Process-wide: whether mapped files that fit are populated at open (default true). The expert
// cache (--mem-budget) turns it off: it reads experts itself and copies only the rest in.
void set_populate_mappings(bool on);
// Replaces the pages of [begin, end) of a read-only mapping of `path` (rounded out to pages) by
// anonymous memory holding the same bytes, read with pread: those bytes then stay resident and
// survive the file shrinking, while the rest of the mapping is never touched.
Result<void> copy_mapping_into_memory(const uint8_t* base, size_t file_size, size_t begin,
                                      size_t end, const std::string& path);

class MappedFile {
  public:
    // Opens with the process-wide weight_memory() choice.
    static Result<std::shared_ptr<MappedFile>> open(const std::string& path);
    static Result<std::shared_ptr<MappedFile>> open(const std::string& path, WeightMemory m);
    // The bytes themselves, held in memory under `name` (fuzzers and tests parse from memory).
    static std::shared_ptr<MappedFile> from_bytes(std::string bytes, std::string name);
    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const uint8_t* data() const { return data_; }
    size_t size() const { return size_; }
    const std::string& path() const { return path_; }
    bool loaded() const { return loaded_; }  // copied into anonymous memory (else mapped)

  private:
    MappedFile() = default;
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
    void* region_ = nullptr;  // what munmap releases
    size_t region_size_ = 0;
    bool loaded_ = false;
    std::string path_;
    std::string owned_;  // from_bytes()
};

}  // namespace moe
