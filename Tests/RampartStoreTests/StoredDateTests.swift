import Foundation
import GRDB
import Testing

@testable import RampartStore

@Suite("Dates written in GRDB's stored form")
struct StoredDateTests {
    @Test("the text is GRDB's own for dates across two centuries, fractions and day boundaries included")
    func matchesGRDB() {
        var generator = SystemRandomNumberGenerator()
        var dates: [Date] = [
            Date(timeIntervalSince1970: 0), Date(timeIntervalSince1970: 0.9995), Date(timeIntervalSince1970: 86_399.999),
            Date(timeIntervalSince1970: 951_782_400),  // 2000-02-29
            Date(timeIntervalSince1970: 4_107_542_399.5),  // 2100-02-28T23:59:59.5
            Date(timeIntervalSince1970: 1_767_225_600.001),
        ]
        for _ in 0..<2000 {
            dates.append(Date(timeIntervalSince1970: Double.random(in: 0..<4_102_444_800, using: &generator)))
            dates.append(Date(timeIntervalSince1970: Double(Int.random(in: 0..<4_102_444_800, using: &generator))))
        }
        for date in dates {
            #expect(StoredDate.text(date) == String.fromDatabaseValue(date.databaseValue), "\(date.timeIntervalSince1970)")
        }
    }

    @Test("GRDB reads the text back to the same millisecond")
    func readsBack() throws {
        let date = Date(timeIntervalSince1970: 1_767_225_600.123)
        let read = try #require(Date.fromDatabaseValue(StoredDate.text(date).databaseValue))
        #expect(abs(read.timeIntervalSince(date)) < 0.001)
    }
}
