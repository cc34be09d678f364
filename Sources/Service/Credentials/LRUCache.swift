/// A bounded map that evicts its least recently used entry when full: a doubly linked list over
/// an array of nodes (indices, no per-entry allocation) and a dictionary from key to node.
/// Every operation is O(1). Not thread-safe: its owner holds it under a lock.
struct LRUCache<Key: Hashable, Value> {
    fileprivate struct Node {
        var key: Key
        /// Nil once removed, so a freed slot holds nothing of what it held.
        var value: Value?
        var newer: Int?
        var older: Int?
    }

    let capacity: Int
    private var index: [Key: Int] = [:]
    private var nodes: [Node] = []
    private var free: [Int] = []
    /// Most and least recently used.
    private var newest: Int?
    private var oldest: Int?

    init(capacity: Int) {
        precondition(capacity > 0, "an LRU cache holds at least one entry")
        self.capacity = capacity
    }

    var count: Int { index.count }

    /// The value, made the most recently used.
    mutating func value(for key: Key) -> Value? {
        guard let position = index[key] else { return nil }
        unlink(position)
        pushNewest(position)
        return nodes[position].value
    }

    /// The value without touching the order.
    func peek(_ key: Key) -> Value? {
        index[key].flatMap { nodes[$0].value }
    }

    /// Stores `value` as the most recently used; when full, the least recently used entry goes.
    mutating func set(_ key: Key, _ value: Value) {
        if let position = index[key] {
            nodes[position].value = value
            unlink(position)
            pushNewest(position)
            return
        }
        if index.count >= capacity, let oldest {
            remove(nodes[oldest].key)
        }
        let node = Node(key: key, value: value, newer: nil, older: nil)
        let position: Int
        if let reused = free.popLast() {
            nodes[reused] = node
            position = reused
        } else {
            nodes.append(node)
            position = nodes.count - 1
        }
        index[key] = position
        pushNewest(position)
    }

    /// Removes the value and returns it (uniquely referenced, so changing it copies nothing).
    mutating func take(_ key: Key) -> Value? {
        guard let position = index[key] else { return nil }
        let value = nodes[position].value
        remove(key)
        return value
    }

    mutating func remove(_ key: Key) {
        guard let position = index.removeValue(forKey: key) else { return }
        unlink(position)
        nodes[position].value = nil
        free.append(position)
    }

    mutating func removeAll() {
        index.removeAll()
        nodes.removeAll()
        free.removeAll()
        newest = nil
        oldest = nil
    }

    /// Keys from most to least recently used (tests).
    var keysByRecency: [Key] {
        var keys: [Key] = []
        var cursor = newest
        while let position = cursor {
            keys.append(nodes[position].key)
            cursor = nodes[position].older
        }
        return keys
    }

    private mutating func unlink(_ position: Int) {
        let (newer, older) = (nodes[position].newer, nodes[position].older)
        if let newer { nodes[newer].older = older } else { newest = older }
        if let older { nodes[older].newer = newer } else { oldest = newer }
        nodes[position].newer = nil
        nodes[position].older = nil
    }

    private mutating func pushNewest(_ position: Int) {
        nodes[position].older = newest
        nodes[position].newer = nil
        if let newest { nodes[newest].newer = position }
        newest = position
        if oldest == nil { oldest = position }
    }
}

extension LRUCache: Sendable where Key: Sendable, Value: Sendable {}
extension LRUCache.Node: Sendable where Key: Sendable, Value: Sendable {}
