import Hummingbird
import Spec

/// One page of a list endpoint: `{"items": [...], "nextCursor": "..." | null}`; pass
/// `nextCursor` back as `cursor` (or `after`) for the next page, until it is null.
struct Page<Item: Encodable>: Encodable {
    let items: [Item]
    let nextCursor: String?

    enum CodingKeys: String, CodingKey { case items, nextCursor }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(items, forKey: .items)
        try container.encode(nextCursor, forKey: .nextCursor)  // null, not absent, on the last page
    }

    /// The page size a request asks for: `limit`, 1 to `Limits.maxPageSize`, default
    /// `Limits.defaultPageSize`.
    static func limit(_ request: Request) throws(SignetError) -> Int {
        guard let text = request.uri.queryParameters["limit"] else { return Limits.defaultPageSize }
        guard let value = Int(text), (1...Limits.maxPageSize).contains(value) else {
            throw .badRequest("limit must be a whole number from 1 to \(Limits.maxPageSize)")
        }
        return value
    }
}
