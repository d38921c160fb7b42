import Foundation
import PackagePlugin

/// Embeds the top-level `lua/` scripts into the target that uses this plugin, so the
/// binary carries them and runs from any directory.
///
/// SwiftPM evaluates this plugin when `Package.swift` changes: after adding or removing a
/// `.lua` file, touch `Package.swift` so the new list of inputs is seen.
@main
struct EmbedLuaPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let luaDirectory = context.package.directoryURL.appending(path: "lua")
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedLua.swift")
        let inputs = try luaFiles(in: luaDirectory)
        return [
            .buildCommand(
                displayName: "Embedding \(inputs.count) Lua files into \(target.name)",
                executable: try context.tool(named: "LuaEmbedder").url,
                arguments: [luaDirectory.path, output.path],
                inputFiles: inputs,
                outputFiles: [output]
            )
        ]
    }

    private func luaFiles(in directory: URL) throws -> [URL] {
        guard let walker = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: nil) else {
            return []
        }
        return walker.compactMap { $0 as? URL }.filter { $0.pathExtension == "lua" }
            .sorted { $0.path < $1.path }
    }
}
