#include "core/dtype.h"

#include <array>
#include <cctype>

#include "core/check.h"

namespace moe {
namespace {

// Block layouts from the GGUF specification (ggml type_traits).
constexpr std::array kTraits = {
    DTypeTraits{DType::F32, "f32", 1, 4, false},
    DTypeTraits{DType::F16, "f16", 1, 2, false},
    DTypeTraits{DType::Q4_0, "q4_0", 32, 18, true},
    DTypeTraits{DType::Q4_1, "q4_1", 32, 20, true},
    DTypeTraits{DType::Q5_0, "q5_0", 32, 22, true},
    DTypeTraits{DType::Q5_1, "q5_1", 32, 24, true},
    DTypeTraits{DType::Q8_0, "q8_0", 32, 34, true},
    DTypeTraits{DType::Q8_1, "q8_1", 32, 36, true},
    DTypeTraits{DType::Q2_K, "q2_K", 256, 84, true},
    DTypeTraits{DType::Q3_K, "q3_K", 256, 110, true},
    DTypeTraits{DType::Q4_K, "q4_K", 256, 144, true},
    DTypeTraits{DType::Q5_K, "q5_K", 256, 176, true},
    DTypeTraits{DType::Q6_K, "q6_K", 256, 210, true},
    DTypeTraits{DType::Q8_K, "q8_K", 256, 292, true},
    DTypeTraits{DType::IQ2_XXS, "iq2_xxs", 256, 66, true},
    DTypeTraits{DType::IQ2_XS, "iq2_xs", 256, 74, true},
    DTypeTraits{DType::IQ3_XXS, "iq3_xxs", 256, 98, true},
    DTypeTraits{DType::IQ1_S, "iq1_s", 256, 50, true},
    DTypeTraits{DType::IQ4_NL, "iq4_nl", 32, 18, true},
    DTypeTraits{DType::IQ3_S, "iq3_s", 256, 110, true},
    DTypeTraits{DType::IQ2_S, "iq2_s", 256, 82, true},
    DTypeTraits{DType::IQ4_XS, "iq4_xs", 256, 136, true},
    DTypeTraits{DType::I8, "i8", 1, 1, false},
    DTypeTraits{DType::I16, "i16", 1, 2, false},
    DTypeTraits{DType::I32, "i32", 1, 4, false},
    DTypeTraits{DType::I64, "i64", 1, 8, false},
    DTypeTraits{DType::F64, "f64", 1, 8, false},
    DTypeTraits{DType::IQ1_M, "iq1_m", 256, 56, true},
    DTypeTraits{DType::BF16, "bf16", 1, 2, false},
    DTypeTraits{DType::TQ1_0, "tq1_0", 256, 54, true},
    DTypeTraits{DType::TQ2_0, "tq2_0", 256, 66, true},
    DTypeTraits{DType::MXFP4, "mxfp4", 32, 17, true},
};

}  // namespace

std::optional<DTypeTraits> dtype_traits(uint32_t type_id) {
    for (const auto& t : kTraits)
        if (uint32_t(t.type) == type_id) return t;
    return std::nullopt;
}

const DTypeTraits& traits(DType t) {
    for (const auto& tr : kTraits)
        if (tr.type == t) return tr;
    MOE_CHECK(false, "unknown dtype id {}", uint32_t(t));
    return kTraits[0];
}

std::string_view dtype_name(DType t) { return traits(t).name; }

std::optional<DType> dtype_from_name(std::string_view name) {
    for (const auto& tr : kTraits) {
        if (tr.name.size() != name.size()) continue;
        bool eq = true;
        for (size_t i = 0; i < name.size(); ++i)
            eq = eq && std::tolower((unsigned char)tr.name[i]) == std::tolower((unsigned char)name[i]);
        if (eq) return tr.type;
    }
    return std::nullopt;
}

}  // namespace moe
