// Swift 6.3.1, Linux x86_64, `swift build -c release`: the `crashing` shape below dies with
// SIGSEGV/SIGABRT/SIGILL or reads garbage within a few hundred iterations; the debug build
// of the same file, and the `working` shape in release, run all iterations correctly.
//
// The shape that fails: a task-group child that `await`s something resumed from another OS
// thread inside `do`, and returns a value captured from the enclosing loop (`members`) from
// both the `do` and the `catch` branch. The same child written as a call to a separate
// function (`fetchPart`) is compiled correctly, and so is a child without `do`/`catch`, or
// one whose branches return no captured value.
//
//   swift build -c release && .build/release/taskgroup-child-catch crashing   # crashes
//   swift build -c release && .build/release/taskgroup-child-catch working    # prints "0 wrong"
import Foundation

/// A reply resumed on another OS thread, as a Redis connection's dedicated thread does.
func remote(_ items: [Int]) async throws -> [String] {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[String], any Error>) in
        Thread { continuation.resume(returning: items.map { "v\($0)" }) }.start()
    }
}

struct Failure: Error {}

@inline(never)
func crashing(_ groups: [[Int]], count: Int) async -> [String] {
    var replies = [String](repeating: "", count: count)
    await withTaskGroup(of: ([Int], [String]?, Failure?).self) { group in
        for members in groups {
            group.addTask {
                do { return (members, try await remote(members), nil) } catch { return (members, nil, Failure()) }
            }
        }
        for await (members, values, _) in group {
            if let values { for (member, value) in zip(members, values) { replies[member] = value } }
        }
    }
    return replies
}

/// The same child, its body moved into a function of its own.
func fetchPart(_ members: [Int]) async -> ([Int], [String]?, Failure?) {
    do { return (members, try await remote(members), nil) } catch { return (members, nil, Failure()) }
}

@inline(never)
func working(_ groups: [[Int]], count: Int) async -> [String] {
    var replies = [String](repeating: "", count: count)
    await withTaskGroup(of: ([Int], [String]?, Failure?).self) { group in
        for members in groups { group.addTask { await fetchPart(members) } }
        for await (members, values, _) in group {
            if let values { for (member, value) in zip(members, values) { replies[member] = value } }
        }
    }
    return replies
}

let shape = CommandLine.arguments.dropFirst().first ?? "crashing"
var wrong = 0
for _ in 0..<3000 {
    let replies = shape == "working" ? await working([[0, 3], [1], [2]], count: 4)
                                     : await crashing([[0, 3], [1], [2]], count: 4)
    if replies != ["v0", "v1", "v2", "v3"] { wrong += 1 }
}
print("\(shape): \(wrong) wrong of 3000")
