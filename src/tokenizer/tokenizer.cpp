#include "tokenizer/tokenizer.h"

#include "tokenizer/bpe.h"
#include "tokenizer/spm.h"
#include "tokenizer/vocab.h"

namespace moe {

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_source(const ModelSource& src) {
    MOE_TRY(tok::Vocab vocab, tok::load_vocab(src));
    if (vocab.kind == tok::VocabKind::kSpm)
        return std::unique_ptr<Tokenizer>(std::make_unique<tok::SpmTokenizer>(std::move(vocab)));
    return tok::BpeTokenizer::create(std::move(vocab), src);
}

}  // namespace moe
