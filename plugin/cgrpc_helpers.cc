// SPDX-License-Identifier: MIT

#include "cgrpc_helpers.h"

#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/unknown_field_set.h>

#include <cctype>
#include <cstdio>

namespace cgrpc {
namespace plugin {

namespace {

constexpr int kColumnLimit = 80;

// Field numbers from protobuf-c.proto: `extend google.protobuf.FileOptions
// { optional ProtobufCFileOptions pb_c_file = 1019; }` and
// `optional string c_package = 6;` inside ProtobufCFileOptions.
constexpr int kPbCFileExtension = 1019;
constexpr int kCPackageField = 6;

bool IsUpper(char c) { return std::isupper(static_cast<unsigned char>(c)); }

std::vector<std::string> SplitDots(const std::string& name) {
  std::vector<std::string> pieces;
  std::string::size_type start = 0;
  while (start <= name.size()) {
    std::string::size_type dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    if (dot > start) pieces.push_back(name.substr(start, dot - start));
    start = dot + 1;
  }
  return pieces;
}

std::string JoinPieces(const std::string& full_name,
                       const pb::FileDescriptor* file,
                       std::string (*convert)(const std::string&)) {
  std::string result;
  for (const std::string& piece :
       SplitDots(OverrideFullName(full_name, file))) {
    if (!result.empty()) result += "__";
    result += convert(piece);
  }
  return result;
}

// Packs |pieces| greedily onto lines that start at column |column|; returns
// false when one of them cannot fit.  The first line continues |first|.
bool PackLines(const std::string& first, int first_column,
               const std::vector<std::string>& pieces, int column,
               std::string* out) {
  std::string line = first;
  int line_start = first_column;
  bool line_has_piece = false;
  std::string text;
  for (const std::string& piece : pieces) {
    int width = line_start + static_cast<int>(line.size());
    if (line_has_piece &&
        width + 1 + static_cast<int>(piece.size()) > kColumnLimit) {
      text += line + "\n";
      line = std::string(column, ' ');
      line_start = 0;
      line_has_piece = false;
      width = column;
    }
    if (line_has_piece) line += " ";
    line += piece;
    line_has_piece = true;
    if (line_start + static_cast<int>(line.size()) > kColumnLimit) return false;
  }
  *out = text + line;
  return true;
}

int CountLines(const std::string& text) {
  int lines = 1;
  for (char c : text) lines += c == '\n';
  return lines;
}

}  // namespace

std::string CamelToLower(const std::string& name) {
  std::string result;
  bool was_upper = true;  // no underscore before a leading capital
  for (char c : name) {
    bool is_upper = IsUpper(c);
    if (is_upper) {
      if (!was_upper) result += '_';
      result += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else {
      result += c;
    }
    was_upper = is_upper;
  }
  return result;
}

std::string ToCamel(const std::string& name) {
  std::string result;
  bool next_is_upper = true;
  for (char c : name) {
    if (c == '_') {
      next_is_upper = true;
    } else if (next_is_upper) {
      result += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      next_is_upper = false;
    } else {
      result += c;
    }
  }
  return result;
}

std::string CPackage(const pb::FileDescriptor* file) {
  // The plugin does not link protobuf-c.proto's C++ code, so the extension
  // arrives as an unknown field of FileOptions: read it from there.
  const pb::FileOptions& options = file->options();
  const pb::UnknownFieldSet& unknown =
      options.GetReflection()->GetUnknownFields(options);
  std::string c_package;
  for (int i = 0; i < unknown.field_count(); i++) {
    const pb::UnknownField& field = unknown.field(i);
    if (field.number() != kPbCFileExtension ||
        field.type() != pb::UnknownField::TYPE_LENGTH_DELIMITED) {
      continue;
    }
    pb::UnknownFieldSet pb_c_file;
    if (!pb_c_file.ParseFromString(field.length_delimited())) continue;
    for (int j = 0; j < pb_c_file.field_count(); j++) {
      const pb::UnknownField& inner = pb_c_file.field(j);
      if (inner.number() == kCPackageField &&
          inner.type() == pb::UnknownField::TYPE_LENGTH_DELIMITED) {
        c_package = inner.length_delimited();  // the last one wins
      }
    }
  }
  return c_package;
}

std::string OverrideFullName(const std::string& full_name,
                             const pb::FileDescriptor* file) {
  std::string c_package = CPackage(file);
  if (c_package.empty()) return full_name;
  // protoc-c swaps the package prefix for c_package, adding a dot when the
  // file has no package of its own.
  if (file->package().empty()) c_package += ".";
  return c_package + full_name.substr(file->package().size());
}

std::string FullNameToLower(const std::string& full_name,
                            const pb::FileDescriptor* file) {
  return JoinPieces(full_name, file, CamelToLower);
}

std::string FullNameToC(const std::string& full_name,
                        const pb::FileDescriptor* file) {
  return JoinPieces(full_name, file, ToCamel);
}

std::string MessageTypeName(const pb::Descriptor* message) {
  return FullNameToC(message->full_name(), message->file());
}

std::string MessageDescriptorName(const pb::Descriptor* message) {
  return FullNameToLower(message->full_name(), message->file()) +
         "__descriptor";
}

std::string ServiceLowerName(const pb::ServiceDescriptor* service) {
  return FullNameToLower(service->full_name(), service->file());
}

std::string ServiceTypeName(const pb::ServiceDescriptor* service) {
  return FullNameToC(service->full_name(), service->file());
}

std::string StripProto(const std::string& filename) {
  for (const char* suffix : {".protodevel", ".proto"}) {
    std::string s(suffix);
    if (filename.size() >= s.size() &&
        filename.compare(filename.size() - s.size(), s.size(), s) == 0) {
      return filename.substr(0, filename.size() - s.size());
    }
  }
  return filename;
}

std::string FilenameIdentifier(const std::string& filename) {
  std::string result;
  for (char c : filename) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      result += c;
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "_%x", static_cast<unsigned char>(c));
      result += hex;
    }
  }
  return result;
}

std::string FileDescName(const pb::FileDescriptor* file) {
  return FilenameIdentifier(file->name()) + "__cgrpc_file";
}

std::string ProtocCHeaderPath(const pb::FileDescriptor* file) {
  return StripProto(file->name()) + ".pb-c.h";
}

std::string GrpcHeaderPath(const pb::FileDescriptor* file) {
  return StripProto(file->name()) + ".grpc-c.h";
}

std::string GrpcSourcePath(const pb::FileDescriptor* file) {
  return StripProto(file->name()) + ".grpc-c.c";
}

std::vector<std::string> CommentLines(const std::string& comment) {
  std::vector<std::string> lines;
  std::string::size_type start = 0;
  while (start < comment.size()) {
    std::string::size_type end = comment.find('\n', start);
    if (end == std::string::npos) end = comment.size();
    std::string line = comment.substr(start, end - start);
    start = end + 1;
    while (!line.empty() &&
           std::isspace(static_cast<unsigned char>(line.back()))) {
      line.pop_back();
    }
    // protoc keeps the space after "//"; drop it, we add our own.
    if (!line.empty() && line[0] == ' ') line.erase(0, 1);
    // Defuse comment delimiters so the text cannot end our comment early
    // or open a nested one.
    for (std::string::size_type p; (p = line.find("*/")) != std::string::npos;)
      line.replace(p, 2, "* /");
    for (std::string::size_type p; (p = line.find("/*")) != std::string::npos;)
      line.replace(p, 2, "/ *");
    lines.push_back(line);
  }
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  while (!lines.empty() && lines.front().empty()) lines.erase(lines.begin());
  return lines;
}

std::vector<std::string> WrapWords(const std::string& text, int width) {
  std::vector<std::string> lines;
  std::string line;
  std::string::size_type pos = 0;
  while (pos < text.size()) {
    std::string::size_type end = text.find(' ', pos);
    if (end == std::string::npos) end = text.size();
    std::string word = text.substr(pos, end - pos);
    // Keep a double space after a full stop as a single separator unit.
    std::string sep = " ";
    while (end < text.size() && text[end] == ' ') {
      if (end > pos && text[end - 1] == '.' && end + 1 < text.size() &&
          text[end + 1] == ' ') {
        sep = "  ";
      }
      end++;
    }
    pos = end;
    if (word.empty()) continue;
    if (!line.empty() && static_cast<int>(line.size() + word.size()) > width) {
      while (!line.empty() && line.back() == ' ') line.pop_back();
      lines.push_back(line);
      line.clear();
    }
    line += word;
    if (pos < text.size()) line += sep;
    sep = " ";
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  if (!line.empty()) lines.push_back(line);
  return lines;
}

void PrintComment(pb::io::Printer* printer,
                  const std::vector<std::string>& lines, int indent) {
  if (lines.empty()) return;
  std::string pad(indent, ' ');
  if (lines.size() == 1 &&
      indent + 6 + static_cast<int>(lines[0].size()) <= kColumnLimit) {
    printer->Print("$pad$/* $line$ */\n", "pad", pad, "line", lines[0]);
    return;
  }
  printer->Print("$pad$/*\n", "pad", pad);
  for (const std::string& line : lines) {
    if (line.empty()) {
      printer->Print("$pad$ *\n", "pad", pad);
    } else {
      printer->Print("$pad$ * $line$\n", "pad", pad, "line", line);
    }
  }
  printer->Print("$pad$ */\n", "pad", pad);
}

std::string WrapParams(const std::string& head,
                       const std::vector<std::string>& params,
                       const std::string& tail, int indent, Wrap wrap) {
  if (params.empty()) return head + tail;
  std::vector<std::string> pieces;
  std::string one_line = head;
  for (size_t i = 0; i < params.size(); i++) {
    bool last = i + 1 == params.size();
    pieces.push_back(params[i] + (last ? tail : ","));
    one_line += params[i] + (last ? tail : ", ");
  }
  if (indent + static_cast<int>(one_line.size()) <= kColumnLimit) {
    return one_line;
  }
  std::string aligned;
  bool aligned_fits = PackLines(
      head, indent, pieces, indent + static_cast<int>(head.size()), &aligned);
  std::string broken;
  bool broken_fits =
      PackLines(std::string(indent + 4, ' '), 0, pieces, indent + 4, &broken);
  if (broken_fits) broken = head + "\n" + broken;
  if (aligned_fits && broken_fits && wrap == Wrap::kFewestLines) {
    return CountLines(broken) < CountLines(aligned) ? broken : aligned;
  }
  if (aligned_fits) return aligned;
  if (broken_fits) return broken;
  // A parameter is too wide even after the break: let the line run long
  // rather than split a type.
  std::string text = head;
  for (const std::string& piece : pieces) {
    text += "\n" + std::string(indent + 4, ' ') + piece;
  }
  return text;
}

}  // namespace plugin
}  // namespace cgrpc
