"""Deterministic demo catalog: an invented grocery taxonomy, products and planted wrong labels.

No downloaded data. ``generate_demo_catalog(seed=0)`` always yields the same rows, and
``write_csv`` the same bytes, so a demo, a test and a benchmark can all rely on it.
A planted product keeps the text of what it really is; only its category_path is wrong.
Pure Python, no Django.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from catalog.rows import PATH_SEPARATOR

COLUMNS = ("external_id", "name", "brand", "description", "category_path", "size", "price")

# Leaf spec: "nouns ; varieties ; sizes ; key ingredients/claims for descriptions ; price range".
# Alternatives are "|"-separated. Every leaf sits at depth 3 (department > aisle > leaf).
TAXONOMY: dict[str, dict[str, dict[str, str]]] = {
    "Dairy & Eggs": {
        "Milk": {
            "Dairy Milk": "Whole Milk|Low Fat Milk|Toned Milk|Skim Milk; Farm Fresh|Homogenized|Vitamin D|Organic Grass-Fed; 1 l|500 ml|1 gallon|64 fl oz; cow milk, calcium, vitamin d; 1-6",
            "Plant-Based Milk": "Almond Milk|Oat Milk|Soy Milk|Coconut Milk Beverage; Unsweetened|Vanilla|Original|Barista Edition|Chocolate; 1 l|32 fl oz|64 fl oz; almonds, oats, calcium, dairy-free, vegan; 2-6",
            "Flavoured Milk": "Chocolate Milk|Strawberry Milk|Badam Milk|Kesar Milk|Coffee Milk; Double Chocolate|Classic|Rich; 200 ml|180 ml|330 ml; milk, cocoa, saffron, almond; 1-3",
        },
        "Cheese": {
            "Hard Cheese": "Parmesan Cheese|Pecorino Romano|Aged Gouda|Grana Padano|Manchego; Grated|Wedge|Shaved|Aged 24 Month; 200 g|250 g|8 oz|5 oz; cow milk, sheep milk, aged, salt; 5-15",
            "Soft Cheese": "Brie|Camembert|Goat Cheese|Ricotta|Mascarpone; Creamy|Herb|Double Cream|Classic; 125 g|200 g|8 oz|4 oz; cow milk, goat milk, cream; 4-12",
            "Sliced & Shredded Cheese": "Cheddar Cheese Slices|Shredded Mozzarella|Mexican Shredded Cheese|Swiss Cheese Slices|Processed Cheese Slices; Mild|Sharp|Reduced Fat|Low Moisture; 200 g|8 oz|12 oz|400 g; cheddar, mozzarella, milk; 3-9",
            "Paneer & Tofu": "Paneer|Malai Paneer|Firm Tofu|Silken Tofu; Fresh|Low Fat|Organic|Extra Firm; 200 g|500 g|14 oz; milk, soy, high protein; 2-6",
        },
        "Yogurt & Butter": {
            "Yogurt": "Greek Yogurt|Dahi|Set Curd|Yogurt Cup|Skyr; Plain|Strawberry|Blueberry|Vanilla|Mango|Honey; 400 g|150 g|32 oz|5.3 oz|1 kg; milk, live cultures, fruit, high protein; 1-7",
            "Butter & Ghee": "Salted Butter|Unsalted Butter|Cow Ghee|Desi Ghee|Cultured Butter; Pure|Organic|Grass-Fed|Table; 100 g|500 g|1 l|16 oz|200 g; butter, milk fat, cow milk; 3-15",
            "Eggs": "Large Brown Eggs|Free Range Eggs|White Eggs|Omega-3 Eggs; Farm Fresh|Organic|Pasture Raised|Cage-Free; 6 count|12 count|18 count|30 count; eggs, omega-3; 2-8",
        },
    },
    "Bakery": {
        "Bread": {
            "Sandwich Bread": "White Bread|Whole Wheat Bread|Multigrain Bread|Brown Bread|Sourdough Loaf; Sliced|Soft|Seeded|Sandwich; 400 g|24 oz|20 oz|800 g; wheat flour, whole grain, yeast; 2-6",
            "Buns & Rolls": "Burger Buns|Hot Dog Buns|Dinner Rolls|Pav|Brioche Buns; Soft|Sesame|Potato|Classic; 8 count|6 count|12 count|300 g; wheat flour, butter, sesame; 2-5",
            "Flatbreads & Tortillas": "Flour Tortillas|Corn Tortillas|Pita Bread|Naan|Whole Wheat Wraps; Soft Taco|Garlic|Butter|Fajita Size; 8 count|10 count|12 count|300 g; wheat, corn, garlic; 2-5",
        },
        "Cakes & Pastries": {
            "Cakes": "Chocolate Cake|Pound Cake|Fruit Cake|Tea Cake|Cupcakes; Rich|Eggless|Marble|Red Velvet; 250 g|400 g|16 oz; cocoa, eggs, butter, raisins; 3-12",
            "Muffins & Croissants": "Blueberry Muffins|Butter Croissants|English Muffins|Chocolate Muffins; Mini|Jumbo|Classic; 4 count|6 count|300 g; butter, blueberries, wheat flour; 3-7",
        },
        "Cookies & Biscuits": {
            "Cookies": "Chocolate Chip Cookies|Oatmeal Raisin Cookies|Peanut Butter Cookies|Butter Cookies|Sandwich Cookies; Chewy|Crunchy|Double Chocolate|Soft Baked; 200 g|13 oz|300 g|7 oz; chocolate chips, oats, butter, peanut; 2-6",
            "Biscuits & Rusk": "Marie Biscuits|Digestive Biscuits|Cream Biscuits|Glucose Biscuits|Toast Rusk|Jeera Biscuits; Classic|Elaichi|Sugar Free|Whole Wheat; 250 g|400 g|800 g|120 g; wheat flour, sugar, cardamom, cumin; 1-4",
            "Crackers": "Saltine Crackers|Whole Grain Crackers|Cheese Crackers|Rice Crackers|Water Crackers; Original|Sea Salt|Rosemary|Everything; 7 oz|200 g|10 oz|150 g; wheat, cheddar, rice, sea salt; 2-5",
        },
    },
    "Snacks": {
        "Bars": {
            "Protein Bars": "Protein Bar|Whey Protein Bar|Plant Protein Bar|Crisp Protein Bar; Chocolate Peanut Butter|Cookies and Cream|Salted Caramel|Chocolate Chip Cookie Dough|Almond Fudge; 60 g|12 x 60 g|2.1 oz|4 x 50 g; whey protein, peanuts, chocolate, 20 g protein, gluten-free; 2-30",
            "Granola Bars": "Granola Bar|Cereal Bar|Oat Bar|Muesli Bar|Fruit and Nut Bar; Honey Oat|Chocolate Chip|Peanut|Cranberry Almond; 6 x 35 g|8 count|210 g|6 count; oats, honey, almonds, whole grain; 3-7",
            "Energy Bars": "Energy Bar|Date Bar|Nut Bar; Cashew Cookie|Peanut Butter|Blueberry|Dark Chocolate Sea Salt; 45 g|12 count|1.6 oz; dates, cashews, nuts, vegan; 2-25",
        },
        "Chips & Savory": {
            "Potato Chips": "Potato Chips|Kettle Cooked Potato Chips|Wafer Chips|Crinkle Cut Chips; Sea Salt|Salt and Vinegar|Sour Cream and Onion|Magic Masala|Barbecue; 52 g|150 g|8 oz|1 oz; potatoes, sunflower oil, sea salt; 1-5",
            "Tortilla Chips": "Tortilla Chips|Nachos|Corn Chips; Restaurant Style|Lime|Nacho Cheese|Blue Corn; 13 oz|150 g|11 oz; corn, lime, cheese; 2-5",
            "Namkeen": "Aloo Bhujia|Moong Dal Namkeen|Khatta Meetha|Navratan Mix|Bhujia Sev; Classic|Spicy|Haldiram Style|Lite; 200 g|400 g|1 kg; gram flour, moong dal, peanuts, spices; 1-5",
            "Popcorn & Pretzels": "Microwave Popcorn|Ready to Eat Popcorn|Pretzel Twists|Pretzel Sticks; Butter|Caramel|Sea Salt|Cheddar; 3 count|100 g|16 oz|8 oz; corn, butter, wheat flour; 2-5",
        },
        "Nuts & Dried Fruit": {
            "Nuts": "Almonds|Cashews|Walnuts|Pistachios|Mixed Nuts; Roasted and Salted|Raw|Californian|Honey Roasted; 200 g|500 g|16 oz|1 kg; almonds, cashews, walnuts, sea salt; 4-20",
            "Dried Fruit": "Raisins|Dates|Dried Cranberries|Dried Apricots|Prunes; Seedless|Medjool|Sweetened|Organic; 250 g|500 g|6 oz|12 oz; raisins, dates, cranberries, no added sugar; 2-10",
            "Trail Mix & Seeds": "Trail Mix|Chia Seeds|Pumpkin Seeds|Flax Seeds|Roasted Makhana; Omega|Sweet and Salty|Peri Peri|Raw; 200 g|12 oz|100 g; chia, flax, pumpkin seeds, fox nuts; 3-10",
        },
    },
    "Candy & Chocolate": {
        "Chocolate": {
            "Chocolate Bars": "Milk Chocolate Bar|Dark Chocolate Bar|White Chocolate Bar|Chocolate Bar; 70% Cocoa|Hazelnut|Sea Salt Caramel|Fruit and Nut|Almond; 100 g|3.5 oz|40 g|150 g; cocoa, milk, sugar, hazelnuts; 1-6",
            "Chocolate Boxes": "Assorted Chocolates|Chocolate Truffles|Pralines|Chocolate Gift Box; Luxury|Assorted|Milk|Dark; 200 g|8 oz|250 g; cocoa, hazelnut, cream; 5-20",
        },
        "Candy": {
            "Gummies & Chewy Candy": "Gummy Bears|Sour Gummy Worms|Fruit Chews|Jelly Beans; Sour|Fruity|Tropical|Sugar Free; 5 oz|200 g|7 oz|100 g; gelatin, fruit juice, sugar; 1-5",
            "Hard Candy & Lollipops": "Lollipops|Hard Candy|Toffees|Butterscotch Candy; Assorted|Cola|Mango|Mint; 100 count|300 g|10 oz; sugar, butter, mango; 1-6",
            "Gum & Mints": "Chewing Gum|Breath Mints|Bubble Gum; Peppermint|Spearmint|Wintergreen|Sugar Free; 15 count|14 count|3 x 15 count|50 g; mint, xylitol; 1-4",
        },
    },
    "Pantry": {
        "Oils & Vinegars": {
            "Olive Oil": "Extra Virgin Olive Oil|Olive Oil|Pomace Olive Oil|Light Olive Oil; Cold Pressed|Classic|Spanish|Italian|Organic; 500 ml|1 l|16.9 fl oz|5 l; olives, cold pressed; 6-30",
            "Cooking Oil": "Sunflower Oil|Mustard Oil|Rice Bran Oil|Groundnut Oil|Canola Oil|Coconut Oil; Refined|Kachi Ghani|Cold Pressed|Virgin; 1 l|5 l|48 fl oz|500 ml; sunflower, mustard, coconut; 3-20",
            "Vinegar": "Balsamic Vinegar|Apple Cider Vinegar|White Vinegar|Red Wine Vinegar; Aged|Raw Unfiltered|Distilled; 500 ml|16 fl oz|250 ml; grapes, apples, with the mother; 2-12",
        },
        "Grains, Rice & Flour": {
            "Rice": "Basmati Rice|Sona Masoori Rice|Jasmine Rice|Brown Rice|Arborio Rice; Extra Long Grain|Aged|Premium|Organic; 1 kg|5 kg|2 lb|10 lb; basmati rice, aged grains; 3-25",
            "Atta & Flour": "Whole Wheat Atta|Multigrain Atta|All Purpose Flour|Besan|Ragi Flour|Almond Flour; Chakki Fresh|Fine|Unbleached|Stoneground; 1 kg|5 kg|2 lb|10 kg; whole wheat, gram flour, ragi, almonds; 2-15",
            "Dals & Pulses": "Toor Dal|Moong Dal|Masoor Dal|Chana Dal|Urad Dal|Rajma|Kabuli Chana; Unpolished|Split|Whole|Organic; 500 g|1 kg|2 lb; lentils, pulses, high protein; 2-8",
        },
        "Pasta & Noodles": {
            "Dry Pasta": "Spaghetti|Penne Rigate|Fusilli|Elbow Macaroni|Linguine|Farfalle; Durum Wheat|Whole Wheat|Gluten Free|Bronze Cut; 500 g|16 oz|1 lb|1 kg; durum wheat semolina; 1-5",
            "Instant Noodles": "Instant Noodles|Cup Noodles|Ramen Noodles|Hakka Noodles; Masala|Chicken|Spicy Kimchi|Atta|Vegetable; 70 g|4 x 70 g|3 oz|280 g; wheat flour, masala, chilli; 1-4",
        },
        "Sauces & Condiments": {
            "Pasta Sauce": "Marinara Sauce|Tomato Basil Pasta Sauce|Arrabbiata Sauce|Alfredo Sauce; Traditional|Roasted Garlic|Spicy|Four Cheese; 24 oz|400 g|680 g; tomatoes, basil, garlic, olive oil; 3-8",
            "Ketchup & Mayo": "Tomato Ketchup|Mayonnaise|Eggless Mayonnaise|Yellow Mustard|Dijon Mustard; Classic|Light|Hot and Sweet|Squeeze; 500 g|20 oz|1 kg|12 oz; tomatoes, eggs, mustard seeds, vinegar; 1-6",
            "Hot Sauce & Asian Sauces": "Hot Sauce|Sriracha|Soy Sauce|Schezwan Sauce|Teriyaki Sauce; Original|Extra Hot|Low Sodium|Garlic; 200 g|5 fl oz|15 fl oz|250 ml; chilli, garlic, soy, vinegar; 2-7",
            "Pickles & Chutneys": "Mango Pickle|Lime Pickle|Mixed Pickle|Mint Chutney|Dill Pickles; Homestyle|Spicy|Sweet|Kosher; 300 g|500 g|24 oz|1 kg; mango, lime, mustard oil, spices; 2-6",
        },
        "Spreads & Olives": {
            "Spreads & Dips": "Olive Tapenade|Hummus|Basil Pesto|Salsa|Spinach Artichoke Dip; Kalamata|Classic|Roasted Red Pepper|Chunky; 180 g|10 oz|8 oz|16 oz; olives, chickpeas, basil, tomatoes, capers; 3-8",
            "Olives": "Kalamata Olives|Green Olives|Black Olives|Stuffed Olives|Castelvetrano Olives; Pitted|Sliced|Whole|Garlic Stuffed; 340 g|6 oz|450 g|12 oz; olives, brine, sea salt; 3-9",
            "Jams & Nut Butters": "Peanut Butter|Almond Butter|Strawberry Jam|Mixed Fruit Jam|Orange Marmalade|Hazelnut Cocoa Spread; Creamy|Crunchy|No Added Sugar|Natural; 340 g|16 oz|500 g|1 kg; peanuts, almonds, strawberries, hazelnuts, cocoa; 2-9",
            "Honey & Syrups": "Raw Honey|Manuka Honey|Maple Syrup|Chocolate Syrup; Pure|Wildflower|Grade A Amber|Organic; 500 g|12 oz|250 ml|1 kg; honey, maple, cocoa; 3-25",
        },
        "Spices & Baking": {
            "Masalas & Spices": "Garam Masala|Turmeric Powder|Red Chilli Powder|Cumin Seeds|Chaat Masala|Coriander Powder|Black Pepper; Pure|Ground|Whole|Kashmiri; 100 g|200 g|500 g|2 oz; turmeric, cumin, coriander, chilli; 1-6",
            "Baking Supplies": "Baking Powder|Baking Soda|Cocoa Powder|Chocolate Chips|Vanilla Extract|Active Dry Yeast; Double Acting|Unsweetened|Semi Sweet|Pure; 100 g|8 oz|200 g|12 oz; cocoa, vanilla, yeast; 2-9",
            "Sugar & Sweeteners": "Cane Sugar|Brown Sugar|Jaggery Powder|Stevia Sweetener|Powdered Sugar; Organic|Light|Natural|Zero Calorie; 1 kg|500 g|2 lb|4 lb; sugarcane, jaggery, stevia; 1-8",
        },
        "Breakfast": {
            "Cereal": "Corn Flakes|Frosted Flakes|Honey Nut Cereal|Chocolate Cereal|Bran Flakes|Kids Cereal; Original|Whole Grain|Low Sugar|Family Size; 475 g|12 oz|18 oz|875 g; corn, whole grain oats, honey, cocoa; 2-7",
            "Oats & Muesli": "Rolled Oats|Instant Oats|Steel Cut Oats|Muesli|Granola; Fruit and Nut|Masala|Honey Almond|Plain; 1 kg|500 g|18 oz|42 oz; oats, almonds, raisins, whole grain; 2-8",
        },
        "Canned & Soup": {
            "Canned Beans & Vegetables": "Black Beans|Chickpeas|Baked Beans|Sweet Corn Kernels|Diced Tomatoes|Kidney Beans; No Salt Added|Organic|In Tomato Sauce|Fire Roasted; 15 oz|400 g|14.5 oz|28 oz; beans, corn, tomatoes, low sodium; 1-4",
            "Soup & Broth": "Tomato Soup|Chicken Noodle Soup|Vegetable Broth|Chicken Broth|Instant Soup; Condensed|Low Sodium|Organic|Hearty; 10.75 oz|32 fl oz|1 l|4 count; tomatoes, chicken, vegetables; 1-5",
        },
    },
    "Beverages": {
        "Coffee": {
            "Ground Coffee": "Ground Coffee|Filter Coffee|Espresso Ground Coffee|Coffee Chicory Blend; Medium Roast|Dark Roast|French Roast|Colombian|Decaf; 12 oz|250 g|500 g|24 oz; arabica coffee, robusta, chicory; 4-15",
            "Whole Bean Coffee": "Whole Bean Coffee|Espresso Beans|Single Origin Coffee Beans; Ethiopian|Dark Roast|Breakfast Blend|Sumatra; 12 oz|1 kg|2 lb|250 g; arabica beans; 6-25",
            "Instant Coffee & Pods": "Instant Coffee|Coffee Pods|K-Cup Coffee Pods|Cold Brew Concentrate; Classic|Gold|Hazelnut|Vanilla; 100 g|12 count|24 count|32 fl oz; coffee, hazelnut, vanilla; 3-15",
        },
        "Tea": {
            "Black & Green Tea": "Assam Tea|Green Tea Bags|Masala Chai|Darjeeling Tea|English Breakfast Tea|Matcha Powder; Loose Leaf|Premium|Honey Lemon|Tulsi; 250 g|100 count|20 count|1 kg; tea leaves, ginger, cardamom, tulsi; 2-12",
            "Herbal Tea": "Chamomile Tea|Peppermint Tea|Hibiscus Tea|Rooibos Tea|Ginger Tea; Caffeine Free|Organic|Sleepytime|Lemon; 20 count|40 count|25 count; chamomile, peppermint, ginger, caffeine free; 2-7",
        },
        "Juice & Soft Drinks": {
            "Juice": "Orange Juice|Apple Juice|Mixed Fruit Juice|Mango Nectar|Cranberry Juice|Pomegranate Juice; Not From Concentrate|No Added Sugar|With Pulp|100% Juice; 1 l|52 fl oz|200 ml|64 fl oz; oranges, apples, mango, pomegranate; 1-7",
            "Soda": "Cola|Lemon Lime Soda|Ginger Ale|Root Beer|Orange Soda; Zero Sugar|Diet|Classic|Cherry; 12 x 12 fl oz|2 l|330 ml|6 x 330 ml; carbonated water, cane sugar; 1-9",
            "Sparkling & Still Water": "Sparkling Water|Mineral Water|Spring Water|Seltzer|Coconut Water; Lime|Unflavored|Grapefruit|Natural; 1 l|500 ml|12 x 12 fl oz|1.5 l; water, minerals, electrolytes; 1-8",
            "Energy & Sports Drinks": "Energy Drink|Sports Drink|Electrolyte Drink|Glucose Powder; Original|Sugar Free|Lemon Lime|Tropical; 250 ml|16 fl oz|500 ml|28 fl oz; caffeine, electrolytes, taurine; 1-4",
        },
    },
    "Frozen": {
        "Frozen Meals": {
            "Frozen Pizza": "Frozen Pizza|Thin Crust Pizza|Rising Crust Pizza|Pizza for One; Pepperoni|Margherita|Four Cheese|Supreme|Veggie; 12 oz|400 g|21 oz|2 count; mozzarella, tomato sauce, pepperoni; 4-10",
            "Frozen Entrees": "Chicken Tikka Masala|Mac and Cheese|Frozen Burrito|Frozen Lasagna|Veg Biryani; Family Size|Single Serve|Spicy|Classic; 10 oz|300 g|38 oz|9 oz; chicken, cheese, rice, vegetables; 3-12",
            "Frozen Snacks": "French Fries|Chicken Nuggets|Veg Momos|Samosa|Aloo Tikki|Spring Rolls; Crispy|Spicy|Mini|Cocktail; 400 g|32 oz|1 kg|20 oz; potatoes, chicken, vegetables; 2-8",
        },
        "Frozen Produce": {
            "Frozen Vegetables": "Frozen Green Peas|Frozen Sweet Corn|Frozen Mixed Vegetables|Frozen Broccoli Florets|Frozen Spinach; Steam in Bag|Organic|Chopped|Petite; 500 g|1 kg|12 oz|16 oz; peas, corn, broccoli, spinach; 1-5",
            "Frozen Fruit": "Frozen Strawberries|Frozen Mixed Berries|Frozen Mango Chunks|Frozen Blueberries; Whole|Organic|Unsweetened; 500 g|16 oz|48 oz|1 kg; strawberries, berries, mango; 3-9",
        },
        "Ice Cream & Desserts": {
            "Ice Cream": "Ice Cream|Gelato|Kulfi|Frozen Yogurt; Vanilla Bean|Chocolate Fudge|Butter Pecan|Mango|Cookies and Cream; 1 l|1.5 quart|500 ml|16 fl oz; milk, cream, vanilla, cocoa; 3-9",
            "Frozen Novelties": "Ice Cream Bars|Ice Cream Sandwiches|Ice Pops|Ice Cream Cones; Chocolate Coated|Fruit|Vanilla|Mango; 6 count|4 count|12 count|8 count; milk, chocolate, fruit juice; 3-7",
        },
    },
    "Household": {
        "Cleaning": {
            "Dish Soap": "Dish Soap|Dishwashing Liquid|Dishwash Gel|Dishwash Bar; Lemon|Original|Lime|Free and Clear; 500 ml|19.4 fl oz|750 ml|1 l; lemon, plant based surfactants, lime; 1-6",
            "Dishwasher Detergent": "Dishwasher Tablets|Dishwasher Pods|Dishwasher Powder|Rinse Aid; Lemon|Fresh|All in One|Platinum; 40 count|1 kg|60 count|16 fl oz; enzymes, citric acid; 5-18",
            "Laundry Detergent": "Liquid Laundry Detergent|Detergent Powder|Laundry Pods|Detergent Bar|Matic Liquid Detergent; Fresh Scent|Free and Clear|Front Load|Top Load; 1 kg|2 l|92 fl oz|42 count; enzymes, stain removers; 3-20",
            "Surface & Floor Cleaners": "Floor Cleaner|All Purpose Cleaner|Glass Cleaner|Toilet Cleaner|Bathroom Cleaner; Lavender|Citrus|Pine|Disinfectant; 1 l|975 ml|32 fl oz|500 ml; lavender, citrus, pine oil; 2-7",
        },
        "Paper & Wraps": {
            "Paper Towels & Tissues": "Paper Towels|Toilet Paper|Facial Tissue|Paper Napkins|Kitchen Towels; 2 Ply|Ultra Soft|Select a Size|Mega Roll; 6 count|12 count|4 count|100 count; recycled paper, bamboo; 3-20",
            "Foil, Wraps & Bags": "Aluminium Foil|Cling Wrap|Trash Bags|Zipper Storage Bags|Baking Paper; Heavy Duty|Medium|Large|Gallon; 30 count|9 m|45 count|25 count; aluminium, plastic, paper; 2-10",
        },
        "Home Essentials": {
            "Air Fresheners & Repellents": "Air Freshener|Room Spray|Mosquito Repellent|Incense Sticks|Scented Candles; Lavender|Sandalwood|Citrus|Rose|Jasmine; 250 ml|45 ml|100 count|8 oz; lavender, sandalwood, citronella; 2-9",
            "Cleaning Tools": "Scrub Sponges|Microfiber Cloths|Floor Mop|Toilet Brush|Steel Wool Scrubber; Heavy Duty|Non Scratch|Spin|Refill; 3 count|6 count|1 count; microfiber, cellulose, steel; 2-15",
        },
    },
    "Personal Care": {
        "Oral Care": {
            "Toothpaste": "Toothpaste|Whitening Toothpaste|Herbal Toothpaste|Kids Toothpaste|Sensitive Toothpaste; Mint|Fresh Gel|Clove|Charcoal|Neem; 100 g|150 g|4 oz|6 oz; fluoride, neem, clove, charcoal, mint; 1-6",
            "Toothbrushes & Floss": "Toothbrush|Dental Floss|Floss Picks|Electric Toothbrush Heads; Soft|Medium|Mint|Charcoal; 1 count|4 count|2 count|50 count; bamboo, nylon, mint; 1-12",
            "Mouthwash": "Mouthwash|Oral Rinse|Antiseptic Mouthwash; Cool Mint|Fresh|Alcohol Free|Whitening; 500 ml|1 l|16.9 fl oz|250 ml; mint, fluoride, eucalyptus; 3-9",
        },
        "Hair Care": {
            "Shampoo & Conditioner": "Shampoo|Anti Dandruff Shampoo|Conditioner|2 in 1 Shampoo and Conditioner; Smooth and Silky|Argan Oil|Onion|Keratin|Aloe Vera; 340 ml|650 ml|12 fl oz|180 ml; argan oil, keratin, aloe vera, onion; 2-12",
            "Hair Oil": "Hair Oil|Coconut Hair Oil|Amla Hair Oil|Onion Hair Oil|Almond Hair Oil; Cold Pressed|Non Sticky|Ayurvedic|Light; 200 ml|100 ml|300 ml|8 fl oz; coconut oil, amla, onion, bhringraj; 2-10",
        },
        "Bath & Skin": {
            "Soap & Body Wash": "Bathing Soap|Body Wash|Shower Gel|Glycerin Soap|Hand Wash; Sandalwood|Lavender|Aloe Vera|Rose|Charcoal; 4 x 100 g|125 g|18 fl oz|250 ml|500 ml; sandalwood, glycerin, aloe vera, shea butter; 1-9",
            "Skin Care": "Face Wash|Moisturizer|Body Lotion|Sunscreen Lotion|Face Serum|Lip Balm; Hydrating|SPF 50|Vitamin C|Oil Control|Cocoa Butter; 100 ml|50 g|16.9 fl oz|400 ml|4.5 g; hyaluronic acid, vitamin c, cocoa butter, aloe vera; 2-20",
            "Deodorants & Fragrance": "Deodorant Spray|Antiperspirant Stick|Body Spray|Perfume|Roll On Deodorant; Fresh|Cool Blue|Sport|Floral|Musk; 150 ml|50 ml|2.6 oz|100 ml; aluminum free, musk, citrus; 2-25",
        },
        "Health & Baby": {
            "Vitamins & Supplements": "Multivitamin Tablets|Vitamin D3 Capsules|Fish Oil Softgels|Vitamin C Gummies|Biotin Tablets|Probiotic Capsules; Adult|Daily|Extra Strength|Women's; 60 count|90 count|120 count|30 count; vitamins, minerals, omega-3, vegetarian; 5-25",
            "Diapers & Wipes": "Baby Diapers|Diaper Pants|Baby Wipes|Overnight Diapers; Newborn|Size 3|Large|Sensitive|Unscented; 64 count|32 count|80 count|120 count; cotton, aloe vera, fragrance free; 5-30",
            "Baby Food": "Baby Cereal|Fruit Puree Pouch|Infant Formula|Baby Puffs|Teething Wafers; Stage 1|Stage 2|Apple Banana|Ragi|Rice; 300 g|4 oz|400 g|1.5 oz; rice, ragi, apple, banana, organic; 2-25",
        },
    },
}

# Brands per department; some also appear under a second department (BRAND_CROSSOVERS).
BRANDS: dict[str, list[str]] = {
    "Dairy & Eggs": ["Meadow Gold Farms", "Amrit Dairy", "Green Pasture", "Alpine Crest", "Nandini Fresh", "Oatly Way", "Silkwood", "Cheese Cellar Co", "Happy Hen", "Vrindavan"],
    "Bakery": ["Baker's Oven", "Golden Crust", "Modern Hearth", "Sunrise Bakery", "Brownleaf", "Crumbs & Co", "Parle Style", "Harvest Loaf"],
    "Snacks": ["Crunchwell", "TrailFuel", "Peak Bar", "Haldi House", "Kettle Creek", "Nutty Grove", "Munchies India", "Pro Forge", "Bhuja Bros", "Happy Trails"],
    "Candy & Chocolate": ["Cocoa Crown", "Sweet Alley", "Gummy Garden", "Mint Valley", "Velvet Cocoa", "Toffee Town"],
    "Pantry": ["Olivara", "Kitchen King Foods", "Desi Pantry", "Tuscan Table", "Heritage Mills", "Spice Route", "Mama Rosa", "Golden Harvest", "Nature's Jar", "Saffron Valley", "Great Plains", "Daily Staples"],
    "Beverages": ["Brewmaster", "Chai Point Co", "Orchard Pure", "Fizz Factory", "Highland Springs", "Bean Origins", "Leaf & Kettle", "Volt"],
    "Frozen": ["Frost Kitchen", "Polar Pick", "Snow Valley", "Chill Bites", "Frozen Harvest", "Scoop Shop"],
    "Household": ["Sparkle Home", "CleanNest", "Fresh Linen", "Green Wave", "Shine Bright", "HomeGuard", "Soft Touch"],
    "Personal Care": ["Herbal Roots", "Pure Smile", "SilkStrand", "Ayur Veda Naturals", "DermaCare", "Little Sprout", "Vita Daily", "Cool Breeze"],
}
BRAND_CROSSOVERS: dict[str, list[str]] = {
    "Snacks": ["Cocoa Crown", "Nature's Jar", "Golden Harvest"],
    "Candy & Chocolate": ["Peak Bar", "Nutty Grove"],
    "Pantry": ["Green Pasture", "Haldi House", "Frozen Harvest"],
    "Beverages": ["Oatly Way", "Orchard Pure", "Vita Daily"],
    "Frozen": ["Mama Rosa", "Cheese Cellar Co", "Haldi House"],
    "Dairy & Eggs": ["Silkwood", "Frost Kitchen"],
    "Personal Care": ["Green Wave", "Herbal Roots"],
    "Household": ["Herbal Roots", "Pure Smile"],
    "Bakery": ["Heritage Mills", "Cocoa Crown"],
}

# Look-alike leaves in other aisles or departments: the mistakes a merchandiser really makes.
LOOKALIKES: dict[str, list[str]] = {
    "Snacks > Bars > Protein Bars": ["Candy & Chocolate > Chocolate > Chocolate Bars"],
    "Snacks > Bars > Granola Bars": ["Candy & Chocolate > Chocolate > Chocolate Bars", "Pantry > Breakfast > Cereal"],
    "Snacks > Bars > Energy Bars": ["Candy & Chocolate > Chocolate > Chocolate Bars"],
    "Candy & Chocolate > Chocolate > Chocolate Bars": ["Snacks > Bars > Protein Bars"],
    "Pantry > Spreads & Olives > Spreads & Dips": ["Pantry > Spreads & Olives > Olives"],
    "Pantry > Spreads & Olives > Olives": ["Pantry > Spreads & Olives > Spreads & Dips", "Pantry > Sauces & Condiments > Pickles & Chutneys"],
    "Dairy & Eggs > Milk > Plant-Based Milk": ["Dairy & Eggs > Milk > Dairy Milk"],
    "Dairy & Eggs > Milk > Dairy Milk": ["Dairy & Eggs > Milk > Plant-Based Milk"],
    "Dairy & Eggs > Cheese > Hard Cheese": ["Pantry > Spreads & Olives > Olives", "Dairy & Eggs > Cheese > Sliced & Shredded Cheese"],
    "Dairy & Eggs > Cheese > Paneer & Tofu": ["Dairy & Eggs > Cheese > Soft Cheese"],
    "Frozen > Ice Cream & Desserts > Ice Cream": ["Dairy & Eggs > Yogurt & Butter > Yogurt"],
    "Dairy & Eggs > Yogurt & Butter > Yogurt": ["Frozen > Ice Cream & Desserts > Ice Cream"],
    "Household > Cleaning > Dish Soap": ["Personal Care > Bath & Skin > Soap & Body Wash", "Household > Cleaning > Laundry Detergent"],
    "Personal Care > Bath & Skin > Soap & Body Wash": ["Household > Cleaning > Dish Soap"],
    "Beverages > Coffee > Ground Coffee": ["Beverages > Coffee > Whole Bean Coffee", "Beverages > Tea > Black & Green Tea"],
    "Beverages > Juice & Soft Drinks > Juice": ["Frozen > Frozen Produce > Frozen Fruit"],
    "Frozen > Frozen Meals > Frozen Pizza": ["Bakery > Bread > Flatbreads & Tortillas"],
    "Snacks > Nuts & Dried Fruit > Nuts": ["Pantry > Spreads & Olives > Jams & Nut Butters"],
    "Pantry > Breakfast > Oats & Muesli": ["Snacks > Bars > Granola Bars"],
    "Bakery > Cookies & Biscuits > Cookies": ["Candy & Chocolate > Chocolate > Chocolate Boxes"],
    "Pantry > Oils & Vinegars > Olive Oil": ["Pantry > Spreads & Olives > Olives"],
}

_MARKETING = [
    "Delicious and wholesome, perfect for the whole family.",
    "Best quality, carefully selected for you.",
    "Perfect for busy mornings and lazy weekends.",
    "A customer favourite, now with an improved recipe.",
    "Premium quality you can taste in every bite.",
    "Enjoy the great taste anytime, anywhere.",
    "Trusted by families for generations.",
    "Makes every day a little more special.",
]
_CLAIMS = ["Organic", "Gluten-Free", "Vegan", "Non-GMO", "Sugar Free", "Low Fat", "Whole Grain", "Keto Friendly"]
_PACKS = ["Pack of 2", "Pack of 3", "Pack of 6", "Value Pack", "Family Pack"]


@dataclass(frozen=True)
class Leaf:
    path: str
    nouns: list[str]
    varieties: list[str]
    sizes: list[str]
    keywords: list[str]
    price_range: tuple[float, float]

    @property
    def department(self) -> str:
        return self.path.split(PATH_SEPARATOR)[0]

    @property
    def parent(self) -> str:
        return self.path.rsplit(PATH_SEPARATOR, 1)[0]


@dataclass
class DemoCatalog:
    rows: list[dict]
    planted: set[str] = field(default_factory=set)  # external_ids whose label is wrong
    true_paths: dict[str, str] = field(default_factory=dict)  # every external_id -> right path

    @property
    def category_paths(self) -> list[str]:
        return leaf_paths()


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split("|") if part.strip()]


def leaves() -> list[Leaf]:
    found = []
    for department, aisles in TAXONOMY.items():
        for aisle, leaf_specs in aisles.items():
            for leaf, spec in leaf_specs.items():
                nouns, varieties, sizes, keywords, prices = (p.strip() for p in spec.split(";"))
                low, high = (float(x) for x in prices.split("-"))
                found.append(Leaf(
                    path=PATH_SEPARATOR.join((department, aisle, leaf)),
                    nouns=_split(nouns), varieties=_split(varieties), sizes=_split(sizes),
                    keywords=[k.strip() for k in keywords.split(",") if k.strip()],
                    price_range=(low, high),
                ))
    return found


def leaf_paths() -> list[str]:
    return [leaf.path for leaf in leaves()]


def _brands_for(leaf: Leaf) -> list[str]:
    own = BRANDS[leaf.department]
    # Each leaf gets a stable subset of its department's brands plus the crossovers.
    start = sum(map(ord, leaf.path)) % len(own)
    picked = [own[(start + i) % len(own)] for i in range(4)]
    return picked + BRAND_CROSSOVERS.get(leaf.department, [])[:2]


def _name(rng: random.Random, leaf: Leaf, size: str) -> str:
    noun, variety = rng.choice(leaf.nouns), rng.choice(leaf.varieties)
    roll = rng.random()
    if roll < 0.30:
        name = f"{variety} {noun}"
    elif roll < 0.50:
        name = f"{noun} - {variety}"
    elif roll < 0.65:
        name = f"{variety} {noun}, {size}"
    elif roll < 0.75:
        name = f"{rng.choice(_CLAIMS)} {variety} {noun}"
    elif roll < 0.85:
        name = f"{noun} - {variety}, {rng.choice(_PACKS)}"
    elif roll < 0.93:
        name = f"{variety} {noun} {size}"
    else:
        name = noun
    return name


def _description(rng: random.Random, leaf: Leaf, noun: str) -> str:
    keywords = rng.sample(leaf.keywords, k=min(len(leaf.keywords), rng.randint(1, 3)))
    parts = []
    if rng.random() < 0.8:
        parts.append(rng.choice(_MARKETING))
    if rng.random() < 0.85:
        parts.append(f"Made with {', '.join(keywords)}.")
    if rng.random() < 0.3:
        parts.append(f"{rng.choice(_CLAIMS)}.")
    if rng.random() < 0.3:
        parts.append(f"Our {noun.lower()} is loved by customers everywhere.")
    return " ".join(parts)


def _wrong_path(rng: random.Random, leaf: Leaf, by_parent: dict[str, list[str]], all_paths: list[str]) -> str:
    roll = rng.random()
    lookalikes = LOOKALIKES.get(leaf.path, [])
    siblings = [p for p in by_parent[leaf.parent] if p != leaf.path]
    if roll < 0.6 and lookalikes:
        return rng.choice(lookalikes)
    if roll < 0.88 and siblings:
        return rng.choice(siblings)
    return rng.choice([p for p in all_paths if p != leaf.path])


def generate_demo_catalog(*, n_products: int = 3000, seed: int = 0, mislabel_rate: float = 0.03) -> DemoCatalog:
    """~n_products grocery products over a 3-level taxonomy, with planted wrong labels.

    Planted rows (exactly round(n_products * mislabel_rate)) keep their true text but carry a
    sibling leaf, a look-alike leaf from another aisle/department, or a random leaf.
    """
    if n_products < 1:
        raise ValueError("n_products must be at least 1")
    if not 0 <= mislabel_rate < 1:
        raise ValueError("mislabel_rate must be in [0, 1)")
    rng = random.Random(seed)
    all_leaves = leaves()
    all_paths = [leaf.path for leaf in all_leaves]
    by_parent: dict[str, list[str]] = {}
    for leaf in all_leaves:
        by_parent.setdefault(leaf.parent, []).append(leaf.path)

    rows: list[dict] = []
    seen: set[tuple[str, str, str]] = set()
    for index in range(n_products):
        leaf = all_leaves[index % len(all_leaves)] if index < len(all_leaves) else rng.choice(all_leaves)
        brands = _brands_for(leaf)
        for _attempt in range(8):
            size = rng.choice(leaf.sizes)
            brand = rng.choice(brands)
            name = _name(rng, leaf, size)
            if (name, brand, size) not in seen:
                break
        seen.add((name, brand, size))
        noun = next((n for n in leaf.nouns if n in name), leaf.nouns[0])
        low, high = leaf.price_range
        rows.append({
            "external_id": f"DEMO-{index + 1:06d}",
            "name": name,
            "brand": brand,
            "description": _description(rng, leaf, noun),
            "category_path": leaf.path,
            "size": size,
            "price": f"{rng.uniform(low, high):.2f}",
        })

    n_planted = round(n_products * mislabel_rate)
    planted_indexes = sorted(rng.sample(range(n_products), n_planted))
    leaf_by_path = {leaf.path: leaf for leaf in all_leaves}
    planted: set[str] = set()
    true_paths = {row["external_id"]: row["category_path"] for row in rows}
    for index in planted_indexes:
        row = rows[index]
        true_path = row["category_path"]
        row["category_path"] = _wrong_path(rng, leaf_by_path[true_path], by_parent, all_paths)
        planted.add(row["external_id"])
    return DemoCatalog(rows=rows, planted=planted, true_paths=true_paths)


def write_csv(catalog: DemoCatalog, path: str | Path) -> Path:
    """The import format: header external_id,name,brand,description,category_path,size,price."""
    path = Path(path)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({key: row[key] for key in COLUMNS} for row in catalog.rows)
    return path


def write_jsonl(catalog: DemoCatalog, path: str | Path) -> Path:
    path = Path(path)
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for row in catalog.rows:
            handle.write(json.dumps({key: row[key] for key in COLUMNS}, ensure_ascii=False) + "\n")
    return path


# --------------------------------------------------------------------------- the demo's orders

ORDER_COLUMNS = ("order_id", "external_id", "add_to_cart_order", "reordered")
# How the demo's shoppers fill a basket: habits (a meal, a chore) whose leaves sit in several departments, as
# Parmigiano, olives and pasta do. An order follows one habit (now and then two) and picks up an item outside it.
HABITS: dict[str, tuple[str, ...]] = {
    "Italian dinner": ("Pantry > Pasta & Noodles > Dry Pasta", "Pantry > Sauces & Condiments > Pasta Sauce",
                       "Dairy & Eggs > Cheese > Hard Cheese", "Pantry > Oils & Vinegars > Olive Oil",
                       "Pantry > Spreads & Olives > Olives", "Bakery > Bread > Buns & Rolls"),
    "Breakfast": ("Pantry > Breakfast > Cereal", "Pantry > Breakfast > Oats & Muesli", "Dairy & Eggs > Milk > Dairy Milk",
                  "Beverages > Coffee > Ground Coffee", "Beverages > Juice & Soft Drinks > Juice",
                  "Pantry > Spreads & Olives > Jams & Nut Butters", "Bakery > Bread > Sandwich Bread",
                  "Dairy & Eggs > Yogurt & Butter > Eggs"),
    "Movie night": ("Snacks > Chips & Savory > Potato Chips", "Snacks > Chips & Savory > Popcorn & Pretzels",
                    "Beverages > Juice & Soft Drinks > Soda", "Candy & Chocolate > Chocolate > Chocolate Bars",
                    "Frozen > Ice Cream & Desserts > Ice Cream", "Candy & Chocolate > Candy > Gummies & Chewy Candy"),
    "Taco night": ("Bakery > Bread > Flatbreads & Tortillas", "Snacks > Chips & Savory > Tortilla Chips",
                   "Pantry > Spreads & Olives > Spreads & Dips", "Pantry > Sauces & Condiments > Hot Sauce & Asian Sauces",
                   "Dairy & Eggs > Cheese > Sliced & Shredded Cheese", "Pantry > Canned & Soup > Canned Beans & Vegetables"),
    "Indian dinner": ("Pantry > Grains, Rice & Flour > Rice", "Pantry > Grains, Rice & Flour > Atta & Flour",
                      "Pantry > Grains, Rice & Flour > Dals & Pulses", "Pantry > Spices & Baking > Masalas & Spices",
                      "Pantry > Sauces & Condiments > Pickles & Chutneys", "Dairy & Eggs > Cheese > Paneer & Tofu",
                      "Dairy & Eggs > Yogurt & Butter > Butter & Ghee", "Snacks > Chips & Savory > Namkeen"),
    "Cleaning day": ("Household > Cleaning > Dish Soap", "Household > Cleaning > Dishwasher Detergent",
                     "Household > Cleaning > Laundry Detergent", "Household > Cleaning > Surface & Floor Cleaners",
                     "Household > Paper & Wraps > Paper Towels & Tissues", "Household > Home Essentials > Cleaning Tools"),
    "New baby": ("Personal Care > Health & Baby > Diapers & Wipes", "Personal Care > Health & Baby > Baby Food",
                 "Personal Care > Bath & Skin > Soap & Body Wash", "Dairy & Eggs > Yogurt & Butter > Yogurt",
                 "Frozen > Frozen Produce > Frozen Fruit", "Household > Paper & Wraps > Paper Towels & Tissues"),
    "Workout": ("Snacks > Bars > Protein Bars", "Snacks > Bars > Energy Bars",
                "Beverages > Juice & Soft Drinks > Energy & Sports Drinks",
                "Beverages > Juice & Soft Drinks > Sparkling & Still Water", "Snacks > Nuts & Dried Fruit > Nuts",
                "Snacks > Nuts & Dried Fruit > Trail Mix & Seeds", "Personal Care > Health & Baby > Vitamins & Supplements"),
    "Baking": ("Pantry > Spices & Baking > Baking Supplies", "Pantry > Spices & Baking > Sugar & Sweeteners",
               "Dairy & Eggs > Yogurt & Butter > Butter & Ghee", "Dairy & Eggs > Yogurt & Butter > Eggs",
               "Candy & Chocolate > Chocolate > Chocolate Bars", "Household > Paper & Wraps > Foil, Wraps & Bags"),
    "Tea time": ("Beverages > Tea > Black & Green Tea", "Beverages > Tea > Herbal Tea",
                 "Bakery > Cookies & Biscuits > Biscuits & Rusk", "Bakery > Cakes & Pastries > Cakes",
                 "Pantry > Spreads & Olives > Honey & Syrups", "Bakery > Cakes & Pastries > Muffins & Croissants"),
    "Bathroom shelf": ("Personal Care > Oral Care > Toothpaste", "Personal Care > Oral Care > Toothbrushes & Floss",
                       "Personal Care > Oral Care > Mouthwash", "Personal Care > Hair Care > Shampoo & Conditioner",
                       "Personal Care > Bath & Skin > Deodorants & Fragrance", "Personal Care > Bath & Skin > Skin Care"),
    "Quick meals": ("Frozen > Frozen Meals > Frozen Pizza", "Frozen > Frozen Meals > Frozen Entrees",
                    "Frozen > Frozen Meals > Frozen Snacks", "Pantry > Pasta & Noodles > Instant Noodles",
                    "Pantry > Canned & Soup > Soup & Broth", "Frozen > Frozen Produce > Frozen Vegetables"),
    "Cheese board": ("Dairy & Eggs > Cheese > Soft Cheese", "Dairy & Eggs > Cheese > Hard Cheese",
                     "Bakery > Cookies & Biscuits > Crackers", "Pantry > Spreads & Olives > Olives",
                     "Snacks > Nuts & Dried Fruit > Dried Fruit", "Pantry > Spreads & Olives > Honey & Syrups"),
}


def generate_demo_orders(catalog: DemoCatalog, *, n_orders: int = 12000, seed: int = 0) -> list[tuple[int, str, int, int]]:
    """Orders of the demo catalog's products: (order_id, external_id, add_to_cart_order, reordered) lines.

    Each order follows a habit of HABITS (one in five a second one too): 2 to 5 of its leaves, one product
    of each, the leaf's first products far more often than its last (a product's weight 1 / its rank); one order
    in three adds a product from anywhere. Products are bought as what they are (their true leaf), so a
    mislabelled one sits in the baskets of its kind. Deterministic for a catalog and a seed. Pure Python."""
    if n_orders < 1:
        raise ValueError("n_orders must be at least 1")
    rng = random.Random(seed)
    by_leaf: dict[str, list[str]] = {}
    for row in catalog.rows:
        by_leaf.setdefault(catalog.true_paths[row["external_id"]], []).append(row["external_id"])
    unknown = sorted({path for leaves_ in HABITS.values() for path in leaves_} - set(leaf_paths()))
    if unknown:
        raise ValueError(f"habits name leaves the taxonomy does not have: {unknown}")
    weights = {path: [1 / (rank + 1) for rank in range(len(ids))] for path, ids in by_leaf.items()}
    everything = [row["external_id"] for row in catalog.rows]
    habits = list(HABITS.values())
    lines = []
    for order_id in range(1, n_orders + 1):
        chosen = [rng.choice(habits)]
        if rng.random() < 0.2:
            chosen.append(rng.choice(habits))
        picked: list[str] = []
        for habit in chosen:
            for path in rng.sample(habit, k=rng.randint(2, min(5, len(habit)))):
                if path in by_leaf:
                    picked.append(rng.choices(by_leaf[path], weights=weights[path])[0])
        if rng.random() < 1 / 3:
            picked.insert(rng.randint(0, len(picked)), rng.choice(everything))
        for position, external_id in enumerate(dict.fromkeys(picked), start=1):
            lines.append((order_id, external_id, position, int(rng.random() < 0.6)))
    return lines


def write_orders_csv(lines: list[tuple[int, str, int, int]], path: str | Path) -> Path:
    """The basket import's format: header order_id,external_id,add_to_cart_order,reordered."""
    path = Path(path)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(ORDER_COLUMNS)
        writer.writerows(lines)
    return path
