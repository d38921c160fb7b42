import Foundation
import PackagePlugin

/// Embeds text files into the target that uses this plugin, so the binary carries them and
/// runs from any directory: the Lua scripts of the queue and of the Telegram front, and the
/// dashboard's HTML, CSS and JavaScript. Each target's files become one generated Swift
/// file holding an enum of their exact text (see `Embedder`).
///
/// SwiftPM evaluates this plugin when `Package.swift` changes: after adding or removing an
/// embedded file, touch `Package.swift` so the new list of inputs is seen.
@main
struct EmbedPlugin: BuildToolPlugin {
    /// What one target embeds: the files of one directory, as one enum.
    struct Embedding {
        enum Kind: String { case lua, files }
        /// `lua`: `<name>.lua` keyed by name, `--@include` lines resolved from `lua/includes/`;
        /// `files`: every file keyed by its file name.
        let kind: Kind
        /// Relative to the package's root.
        let directory: String
        /// The generated enum, internal to the target.
        let enumName: String
    }

    /// Which target embeds what. A target not listed here must not use the plugin.
    static let embeddings: [String: Embedding] = [
        "ImageQueue": Embedding(kind: .lua, directory: "lua", enumName: "EmbeddedLua"),
        "TelegramFront": Embedding(kind: .lua, directory: "lua/telegram", enumName: "EmbeddedLua"),
        "ImageQueueServer": Embedding(kind: .files, directory: "Sources/ImageQueueServer/Dashboard",
                                      enumName: "EmbeddedDashboard"),
    ]

    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let embedding = Self.embeddings[target.name] else {
            Diagnostics.error("EmbedPlugin: no embedding is declared for target \(target.name) (see Self.embeddings)")
            return []
        }
        let root = context.package.directoryURL
        let directory = root.appending(path: embedding.directory)
        let includes = root.appending(path: "lua/includes")
        let output = context.pluginWorkDirectoryURL.appending(path: "\(embedding.enumName).swift")
        var inputs = try files(in: directory, extension: embedding.kind == .lua ? "lua" : nil)
        if embedding.kind == .lua { inputs += try files(in: includes, extension: "lua") }
        return [
            .buildCommand(
                displayName: "Embedding \(embedding.directory) into \(target.name)",
                executable: try context.tool(named: "Embedder").url,
                arguments: [embedding.kind.rawValue, embedding.enumName, directory.path, includes.path, output.path],
                inputFiles: inputs,
                outputFiles: [output]
            )
        ]
    }

    /// The directory's own files (not its subdirectories'), sorted.
    private func files(in directory: URL, extension wanted: String?) throws -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.sorted().map { directory.appending(path: $0) }.filter { url in
            var isDirectory: ObjCBool = false
            FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory)
            return !isDirectory.boolValue && !url.lastPathComponent.hasPrefix(".")
                && (wanted == nil || url.pathExtension == wanted)
        }
    }
}
