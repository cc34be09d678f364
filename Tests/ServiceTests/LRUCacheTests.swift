import XCTest

@testable import Service

/// The credential cache's bound: least recently used out first, every operation O(1).
final class LRUCacheTests: XCTestCase {
    func testTheLeastRecentlyUsedEntryGoesWhenFull() {
        var cache = LRUCache<String, Int>(capacity: 3)
        cache.set("a", 1)
        cache.set("b", 2)
        cache.set("c", 3)
        XCTAssertEqual(cache.value(for: "a"), 1)  // a is now the most recent
        cache.set("d", 4)
        XCTAssertNil(cache.peek("b"), "b was the least recently used")
        XCTAssertEqual(cache.keysByRecency, ["d", "a", "c"])
        XCTAssertEqual(cache.count, 3)
    }

    func testPeekDoesNotChangeTheOrderAndSetReplaces() {
        var cache = LRUCache<String, Int>(capacity: 2)
        cache.set("a", 1)
        cache.set("b", 2)
        XCTAssertEqual(cache.peek("a"), 1)
        cache.set("c", 3)
        XCTAssertNil(cache.peek("a"), "peek did not make a recent")
        cache.set("b", 20)
        XCTAssertEqual(cache.keysByRecency, ["b", "c"])
        XCTAssertEqual(cache.peek("b"), 20)
        XCTAssertEqual(cache.count, 2)
    }

    func testRemovedSlotsAreReusedAndRemoveAllEmpties() {
        var cache = LRUCache<Int, Int>(capacity: 4)
        for key in 0..<4 { cache.set(key, key) }
        cache.remove(1)
        cache.remove(7)  // absent: nothing happens
        XCTAssertEqual(cache.keysByRecency, [3, 2, 0])
        cache.set(9, 9)
        XCTAssertEqual(cache.keysByRecency, [9, 3, 2, 0])
        cache.remove(9)
        cache.remove(0)
        XCTAssertEqual(cache.keysByRecency, [3, 2])
        cache.removeAll()
        XCTAssertEqual(cache.count, 0)
        XCTAssertEqual(cache.keysByRecency, [])
        cache.set(5, 5)
        XCTAssertEqual(cache.keysByRecency, [5])
    }

    /// Many operations against a plain model: the same contents and order throughout.
    func testAgreesWithASimpleModel() {
        var cache = LRUCache<Int, Int>(capacity: 16)
        var model: [Int] = []  // most recent first
        var generator = SystemRandomNumberGenerator()
        for step in 0..<20_000 {
            let key = Int.random(in: 0..<40, using: &generator)
            switch Int.random(in: 0..<3, using: &generator) {
            case 0:
                cache.set(key, step)
                model.removeAll { $0 == key }
                model.insert(key, at: 0)
                if model.count > 16 { model.removeLast() }
            case 1:
                let found = cache.value(for: key) != nil
                XCTAssertEqual(found, model.contains(key))
                if found {
                    model.removeAll { $0 == key }
                    model.insert(key, at: 0)
                }
            default:
                cache.remove(key)
                model.removeAll { $0 == key }
            }
        }
        XCTAssertEqual(cache.keysByRecency, model)
    }
}
