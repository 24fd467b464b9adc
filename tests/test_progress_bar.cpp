// The progress bar's line: bytes done of total, rate and ETA, from fixed inputs.
#include <gtest/gtest.h>

#include "core/progress_bar.h"

namespace moe {
namespace {

TEST(ProgressBar, FormatsBytesRateAndEta) {
    // 1.5 GB of 6 GB in 1 s: 1.50 GB/s, 4.5 GB left -> 3.0 s.
    EXPECT_EQ(format_progress("load", 1'500'000'000, 6'000'000'000, 1.0),
              "load  25% [#####...............] 1.50/6.00 GB  1.50 GB/s  ETA 3.0 s");
    // 420 MB of 4.2 GB in 2 s: 0.21 GB/s, 3.78 GB left -> 18.0 s.
    EXPECT_EQ(format_progress("synth", 420'000'000, 4'200'000'000, 2.0),
              "synth  10% [##..................] 0.42/4.20 GB  0.21 GB/s  ETA 18.0 s");
}

TEST(ProgressBar, FinishedLineShowsTheTotalTime) {
    EXPECT_EQ(format_progress("load", 3'000'000'000, 3'000'000'000, 2.5),
              "load 100% [####################] 3.00/3.00 GB  1.20 GB/s  2.5 s");
}

TEST(ProgressBar, NothingDoneYetHasNoEta) {
    EXPECT_EQ(format_progress("load", 0, 1'000'000'000, 1.0),
              "load   0% [....................] 0.00/1.00 GB  0.00 GB/s  ETA --");
    // More reported than the total (a file grown meanwhile) is shown as done, not past 100%.
    EXPECT_EQ(format_progress("load", 2'000'000'000, 1'000'000'000, 1.0),
              "load 100% [####################] 1.00/1.00 GB  1.00 GB/s  1.0 s");
}

}  // namespace
}  // namespace moe
