import CurlHTTP
@testable import ImageWorker
import Testing

/// How answers are classified, and which failures are worth another try.
struct GenerationErrorTests {
    static func classify(_ status: Int, headers: [String: String] = [:], body: [UInt8] = []) -> GenerationError? {
        do {
            _ = try BackendResponse.image(from: HTTPResponse(status: status, headers: headers, body: body))
            return nil
        } catch {
            return error
        }
    }

    @Test(arguments: [(408, "backend_timeout", true), (429, "backend_busy", true), (500, "backend_error", true),
                      (502, "backend_error", true), (503, "backend_error", true), (400, "backend_rejected", false),
                      (401, "backend_rejected", false), (403, "backend_rejected", false), (404, "backend_rejected", false),
                      (302, "backend_rejected", false)])
    func statusesAreClassified(_ status: Int, _ code: String, _ transient: Bool) throws {
        let error = try #require(Self.classify(status))
        #expect(error.kind.rawValue == code)
        #expect(error.isTransient == transient)
        #expect(error.jobError.code == code)
        #expect(error.jobError.message == error.userMessage)
    }

    @Test func retryAfterIsReadInSecondsOnly() {
        #expect(Self.classify(429, headers: ["retry-after": "2"])?.retryAfter == .seconds(2))
        #expect(Self.classify(429, headers: ["retry-after": " 0.5 "])?.retryAfter == .milliseconds(500))
        #expect(Self.classify(429, headers: ["retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"])?.retryAfter == nil)
        #expect(Self.classify(429, headers: ["retry-after": "-1"])?.retryAfter == nil)
        #expect(Self.classify(429)?.retryAfter == nil)
    }

    @Test func aSuccessMustCarryAnImage() throws {
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0]
        let image = try BackendResponse.image(from: HTTPResponse(status: 200, body: png))
        #expect(image.contentType == "image/png" && image.bytes == png && !image.placeholder)
        let jpeg = try BackendResponse.image(from: HTTPResponse(status: 200, body: [0xFF, 0xD8, 0xFF, 0xE0]))
        #expect(jpeg.contentType == "image/jpeg" && jpeg.fileExtension == "jpg")

        for body in ["<!DOCTYPE html><html></html>", #"{"error":"quota"}"#, "", "GARBAGE"] {
            let error = Self.classify(200, body: Array(body.utf8))
            #expect(error?.kind == .invalidImage, "\(body)")
            #expect(error?.isTransient == false)
        }
        #expect(Self.classify(200, body: Array("<html>".utf8))?.detail.contains("HTML") == true)
    }

    @Test func onlyNetworkTimeoutBusyAndServerErrorsAreTransient() {
        let transient: [GenerationError.Kind] = [.unreachable, .timeout, .busy, .serverError]
        let permanent: [GenerationError.Kind] = [.rejected, .invalidImage, .imageTooLarge, .storageFailed]
        #expect(transient.allSatisfy { GenerationError($0, "x").isTransient })
        #expect(permanent.allSatisfy { !GenerationError($0, "x").isTransient })
    }
}
