import Foundation
#if canImport(Glibc)
import Glibc
#endif

// Pipe reads for tests, with read(2) directly: Foundation's FileHandle reads crash the
// whole test process (a `try!` inside) when a signal interrupts them (EINTR), and test
// processes receive signals from the children they start.

extension FileHandle {
    /// The bytes available now (blocking until there are some); empty at end of file.
    public func readChunk() -> Data {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = Glibc.read(fileDescriptor, &buffer, buffer.count)
            if count >= 0 { return Data(buffer.prefix(count)) }
            if errno != EINTR { return Data() }
        }
    }

    /// Everything until end of file.
    public func readAllBytes() -> Data {
        var data = Data()
        while true {
            let chunk = readChunk()
            if chunk.isEmpty { return data }
            data.append(chunk)
        }
    }
}
