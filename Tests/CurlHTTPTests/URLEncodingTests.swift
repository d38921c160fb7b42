import CurlHTTP
import Testing

@Suite struct URLEncodingTests {
    @Test func encodesReservedCharactersSpacesAndUTF8() {
        #expect(URLEncoding.queryValue("a b&c=d/é") == "a%20b%26c%3Dd%2F%C3%A9")
        #expect(URLEncoding.queryValue("1+1?#[]@!$'()*,;:%") == "1%2B1%3F%23%5B%5D%40%21%24%27%28%29%2A%2C%3B%3A%25")
        #expect(URLEncoding.queryValue("🙂\n") == "%F0%9F%99%82%0A")
    }

    @Test func leavesUnreservedCharactersAlone() {
        let unreserved = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
        #expect(URLEncoding.queryValue(unreserved) == unreserved)
        #expect(URLEncoding.queryValue("") == "")
    }
}
