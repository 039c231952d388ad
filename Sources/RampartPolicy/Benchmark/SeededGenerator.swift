/// A deterministic SplitMix64 generator, so a seed always reproduces the same synthetic mesh.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }

    /// `true` with probability `probability`.
    mutating func chance(_ probability: Double) -> Bool {
        Double.random(in: 0..<1, using: &self) < probability
    }

    /// An index in `0..<count`; `count` must be positive.
    mutating func index(_ count: Int) -> Int {
        Int.random(in: 0..<max(count, 1), using: &self)
    }

    /// One element of a non-empty array.
    mutating func pick<Element>(_ items: [Element]) -> Element {
        items[index(items.count)]
    }
}
