// SPDX-License-Identifier: MIT
//
// Naming helpers for protoc-gen-c-grpc.  Every name that refers to something
// protoc-c (protobuf-c 1.4's protoc-gen-c) emits -- message types, message
// descriptors, header paths -- must be spelled exactly as protoc-c spells it,
// including the `option (pb_c_file).c_package` override.  The rules below
// were checked against protoc-c 1.4.1's output.

#ifndef CGRPC_PLUGIN_CGRPC_HELPERS_H_
#define CGRPC_PLUGIN_CGRPC_HELPERS_H_

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/printer.h>

#include <string>
#include <vector>

namespace cgrpc {
namespace plugin {

namespace pb = ::google::protobuf;

// "SayHelloAgain" -> "say_hello_again", "HTTPFetch" -> "httpfetch",
// "Get2Things" -> "get2_things", "Foo_Bar" -> "foo__bar": an underscore goes
// before each upper-case letter that follows a non-upper-case character.
std::string CamelToLower(const std::string& name);

// "hello_request" -> "HelloRequest": drops underscores and upper-cases the
// letter after each one and the first letter.
std::string ToCamel(const std::string& name);

// The c_package option of |file| (`option (pb_c_file).c_package = "..."`
// from protobuf-c.proto), or "" when it is not set.
std::string CPackage(const pb::FileDescriptor* file);

// |full_name| (declared in |file|) with the package replaced by the file's
// c_package when it has one.
std::string OverrideFullName(const std::string& full_name,
                             const pb::FileDescriptor* file);

// "helloworld.HelloRequest" -> "helloworld__hello_request".
std::string FullNameToLower(const std::string& full_name,
                            const pb::FileDescriptor* file);

// "helloworld.HelloRequest" -> "Helloworld__HelloRequest".
std::string FullNameToC(const std::string& full_name,
                        const pb::FileDescriptor* file);

// The C type protoc-c emits for |message|, such as "Outer__Inner".
std::string MessageTypeName(const pb::Descriptor* message);

// The ProtobufCMessageDescriptor protoc-c emits for |message|, such as
// "helloworld__hello_request__descriptor".
std::string MessageDescriptorName(const pb::Descriptor* message);

// The lower-case scope of |service|: "helloworld__greeter".
std::string ServiceLowerName(const pb::ServiceDescriptor* service);

// The CamelCase scope of |service|: "Helloworld__Greeter".
std::string ServiceTypeName(const pb::ServiceDescriptor* service);

// "foo/bar.proto" -> "foo/bar".
std::string StripProto(const std::string& filename);

// protoc-c's file identifier: every character that is not a letter or digit
// becomes "_" and its hex code, so "sub/a_b.proto" -> "sub_2fa_5fb_2eproto".
std::string FilenameIdentifier(const std::string& filename);

// The static cgrpc_file_desc that a generated .c file embeds for |file|
// (its own .proto or one it imports): "sub_2fa_5fb_2eproto__cgrpc_file".
// Its serialized bytes are <this>_bytes and its imports <this>_deps.
std::string FileDescName(const pb::FileDescriptor* file);

// The include path of protoc-c's header for |file|: "sub/foo.pb-c.h".
std::string ProtocCHeaderPath(const pb::FileDescriptor* file);

// Our outputs for |file|: "sub/foo.grpc-c.h" and "sub/foo.grpc-c.c".
std::string GrpcHeaderPath(const pb::FileDescriptor* file);
std::string GrpcSourcePath(const pb::FileDescriptor* file);

// The lines of |comment| (a .proto comment as protoc reports it), with
// trailing blank lines removed and any "/*" or "*/" defused so that the text
// can sit inside a C block comment.
std::vector<std::string> CommentLines(const std::string& comment);

// The leading comment of a descriptor in the .proto source, or "".
template <typename DescriptorT>
std::string LeadingComment(const DescriptorT* descriptor) {
  pb::SourceLocation location;
  if (!descriptor->GetSourceLocation(&location)) return "";
  return location.leading_comments;
}

// Splits |text| into lines of at most |width| characters at spaces (a word
// longer than |width| gets a line of its own).  Two spaces after a sentence
// are kept.
std::vector<std::string> WrapWords(const std::string& text, int width);

// Prints |lines| as a C comment indented by |indent| spaces: one line as
// "/* text */" when it fits in 80 columns, otherwise as a block.
void PrintComment(pb::io::Printer* printer,
                  const std::vector<std::string>& lines, int indent);

// How WrapParams() lays out a list that does not fit on one line.
enum class Wrap {
  // Parameters aligned after "(" whenever they fit there (declarations).
  kAligned,
  // Whichever of the two layouts takes fewer lines, aligned on a tie
  // (calls).
  kFewestLines,
};

// Lays out "<head><param>, <param>...<tail>" in clang-format's LLVM style
// (80 columns): on one line if it fits; otherwise with the parameters packed
// and aligned after the opening parenthesis, or with a break after the
// parenthesis and the parameters packed at |indent| + 4, as |wrap| says.
// |head| ends with "(" and starts at column |indent| (which the result does
// not include).  Returns the text without a final newline.
std::string WrapParams(const std::string& head,
                       const std::vector<std::string>& params,
                       const std::string& tail, int indent,
                       Wrap wrap = Wrap::kAligned);

}  // namespace plugin
}  // namespace cgrpc

#endif  // CGRPC_PLUGIN_CGRPC_HELPERS_H_
