import Foundation
import SignetTestSupport

@testable import Service

extension ManualClock {
    /// The service's clock driven by this one: monotonic time from it, wall time `wall`.
    func signetClock(wall: @escaping @Sendable () -> Date = { Date() }) -> SignetClock {
        SignetClock(wall: wall, monotonic: { self.now })
    }
}
